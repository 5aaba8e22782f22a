/* hub/web_sse.c - GET /api/v1/agentry.v1.AgentHub/Trace as Server-Sent Events (web.h,
 * docs/dashboard.md).
 *
 * Who may read is gRPC's answer: a Trace call with the caller's credentials over the loopback
 * channel, asking for nothing (from the last possible seq, not following), so its status is the
 * grant of Trace itself, namespaces and roles included; a refusal is an HTTP status, which an
 * EventSource does not retry. The events then come in-process (hub/rpc_trace.h): the agent's
 * follower hands each packed event to this stream's sink, under the same window as a gRPC
 * follower, which saves the dashboard a loopback HTTP/2 hop and a thread wake per event. As
 * with gRPC, the grant is checked when the stream starts.
 *
 * Threads: the sink's callbacks run on whichever hub thread committed or read an event, with the
 * agent's lock held: they append the bytes to `in` under s->lock and signal. The connection's
 * thread (libmicrohttpd's content reader) waits on that signal, takes everything in one swap,
 * turns it into text, and tells the follower how many it consumed. While the stream is quiet the
 * reader wakes every WEB_SSE_SLICE_MS to see whether the client closed its socket and every 15 s
 * sends a comment. Lock order: the agent's lock, then s->lock; the connection's thread never
 * holds s->lock while it calls the follower.
 * The response's free callback unsubscribes, after which no callback runs. */
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentry/v1/hub.pb-c.h"
#include "common/arena.h"
#include "common/clock.h"
#include "common/pbjson.h"
#include "common/rpc/pb.h"
#include "common/xalloc.h"
#include "hub/rpc_trace.h"
#include "hub/web_internal.h"

#define WEB_SSE_KEEPALIVE_NS (15LL * 1000 * 1000 * 1000)
#define WEB_SSE_SLICE_MS 1000 /* how often a quiet stream looks whether its client left */

struct web_sse {
    struct hub_web *w;
    struct hub_follower *sub; /* owned: unsubscribed in sse_free */
    struct hub_rpc_trace_sink sink;
    pthread_mutex_t lock; /* guards in, in_events, end_in and end */
    pthread_cond_t ready; /* signalled when in or end_in changes */
    struct ag_strbuf in;  /* events delivered: each a uint32 length, then the packed event */
    unsigned in_events;
    bool end_in;
    struct ag_err end;
    /* The connection thread's own. */
    struct ag_strbuf batch; /* `in`, swapped out */
    struct ag_strbuf out;   /* text not yet handed to libmicrohttpd, from `sent` on */
    size_t sent;
    struct ag_arena arena; /* one decoded event at a time */
    int fd;                /* the client's socket, polled for a hang-up */
    int64_t last_write_ns;
    bool ended;
    bool counted; /* on w->streams, until its last byte is out or it is freed */
};

static void sse_add(struct web_sse *s, const char *text)
{
    ag_strbuf_add(&s->out, text, strlen(text));
}

/* --- the sink: hub threads, agent lock held ---------------------------------------------------- */

static void sink_event(void *ctx, grpc_slice packed)
{
    struct web_sse *s = ctx;
    uint32_t len = (uint32_t)GRPC_SLICE_LENGTH(packed);
    pthread_mutex_lock(&s->lock);
    ag_strbuf_add(&s->in, (const char *)&len, sizeof(len));
    ag_strbuf_add(&s->in, (const char *)GRPC_SLICE_START_PTR(packed), len);
    if (s->in_events++ == 0)
        pthread_cond_signal(&s->ready);
    pthread_mutex_unlock(&s->lock);
    grpc_slice_unref(packed);
}

static void sink_end(void *ctx, enum ag_code code, const char *msg)
{
    struct web_sse *s = ctx;
    pthread_mutex_lock(&s->lock);
    s->end_in = true;
    if (code == AG_OK)
        ag_err_set(&s->end, AG_OK, "the stream ended");
    else
        ag_err_set(&s->end, code, "%s", msg ? msg : ag_code_name(code));
    pthread_cond_signal(&s->ready);
    pthread_mutex_unlock(&s->lock);
}

/* --- the connection's thread --------------------------------------------------------------------- */

static void sse_event(struct web_sse *s, const void *data, size_t len)
{
    struct ag_err err = AG_ERR_INIT;
    Agentry__V1__TraceEvent *ev = rpc_pb_unpack_bytes(
        data, len, &agentry__v1__trace_event__descriptor, &s->arena, &err);
    if (ev) {
        cJSON *j = ag_pbjson_encode(&ev->base);
        char *text = cJSON_PrintUnformatted(j), head[48];
        cJSON_Delete(j);
        snprintf(head, sizeof(head), "id: %" PRIu64 "\ndata: ", ev->seq);
        sse_add(s, head);
        sse_add(s, text);
        sse_add(s, "\n\n");
        free(text);
    }
    ag_arena_reset(&s->arena);
}

static void sse_finish(struct web_sse *s, const struct ag_err *end)
{
    s->ended = true;
    cJSON *j = hub_web_call_error_json(end);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    sse_add(s, end->code == AG_OK ? "event: end\ndata: " : "event: error\ndata: ");
    sse_add(s, text);
    sse_add(s, "\n\n");
    free(text);
}

/* Wait up to timeout_ms for events or the end, and turn all there is into text: false if
 * nothing came. */
static bool sse_take(struct web_sse *s, int64_t timeout_ms)
{
    int64_t deadline = ag_deadline_in_ms(timeout_ms);
    pthread_mutex_lock(&s->lock);
    while (!s->in_events && !s->end_in && ag_cond_wait_until(&s->ready, &s->lock, deadline))
        ;
    struct ag_strbuf t = s->batch;
    s->batch = s->in;
    s->in = t;
    unsigned n = s->in_events;
    s->in_events = 0;
    bool end = s->end_in; /* the end comes after every event, so all of them are in the batch */
    struct ag_err e = s->end;
    pthread_mutex_unlock(&s->lock);
    for (size_t at = 0; at + sizeof(uint32_t) <= s->batch.len;) {
        uint32_t len;
        memcpy(&len, s->batch.s + at, sizeof(len));
        at += sizeof(len);
        sse_event(s, s->batch.s + at, len);
        at += len;
    }
    s->batch.len = 0;
    if (n)
        hub_rpc_trace_consumed(s->sub, n);
    if (end)
        sse_finish(s, &e);
    return n || end;
}

/* Off w->streams: hub_web_stop waits for the streams the hub ended to hand out their end. */
static void sse_uncount(struct web_sse *s)
{
    if (!s->counted)
        return;
    s->counted = false;
    pthread_mutex_lock(&s->w->lock);
    if (--s->w->streams == 0 && !s->w->calls)
        pthread_cond_broadcast(&s->w->idle);
    pthread_mutex_unlock(&s->w->lock);
}

static void sse_free(void *cls)
{
    struct web_sse *s = cls;
    hub_rpc_trace_unsubscribe(s->sub);
    sse_uncount(s);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->ready);
    ag_arena_release(&s->arena);
    free(s->in.s);
    free(s->batch.s);
    free(s->out.s);
    free(s);
}

static bool peer_gone(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return fd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct web_sse *s = cls;
    while (s->sent == s->out.len) {
        s->out.len = s->sent = 0;
        if (s->ended) { /* and the end written */
            sse_uncount(s);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (sse_take(s, WEB_SSE_SLICE_MS))
            continue;
        if (peer_gone(s->fd))
            return MHD_CONTENT_READER_END_WITH_ERROR; /* sse_free unsubscribes */
        if (ag_now_mono_ns() - s->last_write_ns >= WEB_SSE_KEEPALIVE_NS)
            sse_add(s, ": keep-alive\n\n");
    }
    size_t n = s->out.len - s->sent < max ? s->out.len - s->sent : max;
    memcpy(buf, s->out.s + s->sent, n);
    s->sent += n;
    s->last_write_ns = ag_now_mono_ns();
    return (ssize_t)n;
}

struct query_ctx {
    const ProtobufCMessageDescriptor *d;
    cJSON *j;
};

/* A query parameter as a JSON member: "true"/"false" for a bool field, else the string (which
 * pbjson reads as a number or enum name where the field wants one). */
static enum MHD_Result query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    struct query_ctx *q = cls;
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(q->d, key);
    value = value ? value : "";
    if (f && f->type == PROTOBUF_C_TYPE_BOOL &&
        (strcmp(value, "true") == 0 || strcmp(value, "false") == 0))
        cJSON_AddItemToObject(q->j, key, cJSON_CreateBool(strcmp(value, "true") == 0));
    else
        cJSON_AddItemToObject(q->j, key, cJSON_CreateString(value));
    return MHD_YES;
}

/* The TraceRequest of the query, with Last-Event-ID (an EventSource reconnecting) as from_seq
 * = that id + 1. */
static Agentry__V1__TraceRequest *trace_request(struct MHD_Connection *conn, struct ag_err *err)
{
    struct query_ctx q = {&agentry__v1__trace_request__descriptor, cJSON_CreateObject()};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, query_arg, &q);
    const char *last = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
    if (last && *last) {
        char *end;
        unsigned long long id = strtoull(last, &end, 10);
        if (*end || last[0] == '-' || id == ULLONG_MAX) { /* the last of all has no next */
            cJSON_Delete(q.j);
            ag_err_set(err, AG_INVALID_ARGUMENT, "Last-Event-ID '%s' is not an event's seq", last);
            return NULL;
        }
        char buf[32];
        snprintf(buf, sizeof(buf), "%llu", id + 1);
        cJSON_DeleteItemFromObject(q.j, "from_seq");
        cJSON_DeleteItemFromObject(q.j, "fromSeq");
        cJSON_AddStringToObject(q.j, "from_seq", buf);
    }
    ProtobufCMessage *m = ag_pbjson_decode(q.d, q.j, err);
    cJSON_Delete(q.j);
    return (Agentry__V1__TraceRequest *)m;
}

/* Whether the caller may trace req->agent_id: a Trace call that asks for no event. */
static int may_trace(struct hub_web *w, const Agentry__V1__TraceRequest *req,
                     const struct web_cred *cred, struct ag_err *err)
{
    Agentry__V1__TraceRequest probe = *req;
    probe.from_seq = UINT64_MAX;
    probe.follow = false;
    return hub_web_call_unary(w, HUB_WEB_SERVICE_PATH "Trace", &probe.base, NULL, cred, NULL, NULL,
                              err);
}

enum MHD_Result hub_web__serve_trace(struct web_req *r, struct MHD_Connection *conn)
{
    struct ag_err err = AG_ERR_INIT;
    struct web_cred cred;
    if (hub_web_call_caller(r->w, conn, &cred, &err) != 0)
        return hub_web_call_send_error(r, conn, 0, &err);
    Agentry__V1__TraceRequest *req = trace_request(conn, &err);
    int rc = req ? may_trace(r->w, req, &cred, &err) : -1;
    hub_web_call_cred_release(&cred);
    struct web_sse *s = NULL;
    if (rc == 0) {
        s = ag_xcalloc(1, sizeof(*s));
        s->w = r->w;
        pthread_mutex_init(&s->lock, NULL);
        ag_cond_init_mono(&s->ready);
        ag_arena_init(&s->arena, NULL, 0);
        s->sink = (struct hub_rpc_trace_sink){.event = sink_event, .end = sink_end, .ctx = s};
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
            conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        s->fd = ci ? ci->connect_fd : -1;
        pthread_mutex_lock(&r->w->lock);
        r->w->streams++;
        pthread_mutex_unlock(&r->w->lock);
        s->counted = true;
        s->sub = hub_rpc_trace_subscribe(r->w->hub, req->agent_id, req->from_seq, req->follow,
                                         &s->sink, &err);
        rc = s->sub ? 0 : -1;
    }
    if (req)
        protobuf_c_message_free_unpacked(&req->base, NULL);
    if (rc != 0) {
        if (s)
            sse_free(s);
        return hub_web_call_send_error(r, conn, 0, &err);
    }
    s->last_write_ns = ag_now_mono_ns();
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
                                                                  sse_read, s, sse_free);
    if (!resp) {
        sse_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    return hub_web_call_send_resp(r, conn, MHD_HTTP_OK, resp, "text/event-stream");
}
