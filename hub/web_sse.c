/* hub/web_sse.c - GET /api/v1/agentry.v1.AgentHub/Trace as Server-Sent Events (web.h,
 * docs/dashboard.md).
 *
 * The stream's call lives on its own completion queue, which only the connection's thread
 * drains: in the handler first (up to WEB_SSE_FIRST_WAIT_MS, so that an error before the first
 * event, such as NOT_FOUND, is an HTTP status an EventSource does not retry), then in
 * libmicrohttpd's content reader, which blocks until there is text to send. While the stream is
 * quiet the reader wakes every WEB_SSE_SLICE_MS to see whether the client closed its socket
 * (then the call is cancelled) and every 15 s sends a comment. The response's free callback
 * cancels the call if it is still under way and drains every outstanding batch. */
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentry/v1/hub.pb-c.h"
#include "common/arena.h"
#include "common/clock.h"
#include "common/pbjson.h"
#include "common/rpc/pb.h"
#include "common/xalloc.h"
#include "hub/web_internal.h"

#define WEB_SSE_KEEPALIVE_NS (15LL * 1000 * 1000 * 1000)
#define WEB_SSE_FIRST_WAIT_MS 1000
#define WEB_SSE_SLICE_MS 1000 /* how often a quiet stream looks whether its client left */

struct web_sse {
    struct hub_web *w;
    struct web_call c;
    grpc_completion_queue *cq; /* owned */
    int fd;                    /* the client's socket, polled for a hang-up */
    struct ag_strbuf out;      /* text not yet handed to libmicrohttpd, from `sent` on */
    size_t sent;
    struct ag_arena arena; /* one decoded event at a time */
    int64_t last_write_ns;
    unsigned outstanding; /* batches in flight */
    unsigned events;      /* sent or buffered */
    bool recv_out, status_in, ended;
    struct ag_err end; /* the status, once status_in */
    char tag_send, tag_close, tag_recv, tag_status;
};

static void sse_add(struct web_sse *s, const char *text)
{
    ag_strbuf_add(&s->out, text, strlen(text));
}

/* The end of the stream, once the status and every message before it are in. */
static void sse_finish(struct web_sse *s)
{
    if (s->ended || !s->status_in || s->recv_out)
        return;
    s->ended = true;
    cJSON *j = hub_web_call_error_json(&s->end);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    sse_add(s, s->end.code == AG_OK ? "event: end\ndata: " : "event: error\ndata: ");
    sse_add(s, text);
    sse_add(s, "\n\n");
    free(text);
}

static void sse_event(struct web_sse *s, grpc_byte_buffer *bb)
{
    struct ag_err err = AG_ERR_INIT;
    Agentry__V1__TraceEvent *ev = rpc_pb_unpack(bb, &agentry__v1__trace_event__descriptor,
                                                &s->arena, &err);
    if (ev) {
        cJSON *j = ag_pbjson_encode(&ev->base);
        char *text = cJSON_PrintUnformatted(j), head[48];
        cJSON_Delete(j);
        snprintf(head, sizeof(head), "id: %" PRIu64 "\ndata: ", ev->seq);
        sse_add(s, head);
        sse_add(s, text);
        sse_add(s, "\n\n");
        free(text);
        s->events++;
    }
    ag_arena_reset(&s->arena);
}

static void sse_recv(struct web_sse *s)
{
    if (rpc_async_recv(&s->c.a, &s->tag_recv, NULL) == 0) {
        s->recv_out = true;
        s->outstanding++;
    }
}

/* Handle one event of the call, waiting up to timeout_ms: false if none came. */
static bool sse_step(struct web_sse *s, int64_t timeout_ms)
{
    grpc_event e = grpc_completion_queue_next(s->cq, rpc_deadline_ms(timeout_ms), NULL);
    if (e.type != GRPC_OP_COMPLETE)
        return false;
    s->outstanding--;
    if (e.tag == &s->tag_send) {
        rpc_async_send_done(&s->c.a);
        if (rpc_async_close(&s->c.a, &s->tag_close, NULL) == 0)
            s->outstanding++;
    } else if (e.tag == &s->tag_recv) {
        s->recv_out = false;
        grpc_byte_buffer *bb = rpc_async_recv_take(&s->c.a);
        if (bb) {
            sse_event(s, bb);
            grpc_byte_buffer_destroy(bb);
            sse_recv(s);
        }
    } else if (e.tag == &s->tag_status) {
        s->status_in = true;
        if (rpc_async_status(&s->c.a, &s->end) == 0)
            ag_err_set(&s->end, AG_OK, "the stream ended");
    }
    sse_finish(s);
    return true;
}

/* Cancel the call if it still runs, wait for every batch, free everything. */
static void sse_free(void *cls)
{
    struct web_sse *s = cls;
    if (s->outstanding)
        rpc_async_cancel(&s->c.a);
    while (s->outstanding)
        sse_step(s, -1);
    hub_web_call_end(s->w, &s->c);
    hub_web_call_cq_destroy(s->cq, false);
    ag_arena_release(&s->arena);
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
        if (s->ended)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (sse_step(s, WEB_SSE_SLICE_MS))
            continue;
        if (peer_gone(s->fd))
            return MHD_CONTENT_READER_END_WITH_ERROR; /* sse_free cancels the call */
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
        if (*end || last[0] == '-') {
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

/* Start the Trace call: request, status and first receive in flight. */
static int sse_start(struct web_sse *s, const Agentry__V1__TraceRequest *req,
                     const struct web_cred *cred, struct ag_err *err)
{
    if (hub_web_call_start(s->w, &s->c, s->cq, HUB_WEB_SERVICE_PATH "Trace", cred, AG_DEADLINE_NONE,
                           err) != 0)
        return -1;
    if (rpc_async_send(&s->c.a, rpc_pb_pack(&req->base), &s->tag_send, err) != 0)
        return -1;
    s->outstanding++;
    if (rpc_async_recv_status(&s->c.a, &s->tag_status, err) != 0)
        return -1;
    s->outstanding++;
    sse_recv(s);
    return 0;
}

enum MHD_Result hub_web__serve_trace(struct web_req *r, struct MHD_Connection *conn)
{
    struct ag_err err = AG_ERR_INIT;
    struct web_cred cred;
    if (hub_web_call_caller(r->w, conn, &cred, &err) != 0)
        return hub_web_call_send_error(r, conn, 0, &err);
    Agentry__V1__TraceRequest *req = trace_request(conn, &err);
    if (!req) {
        hub_web_call_cred_release(&cred);
        return hub_web_call_send_error(r, conn, 0, &err);
    }
    struct web_sse *s = ag_xcalloc(1, sizeof(*s));
    s->w = r->w;
    s->cq = grpc_completion_queue_create_for_next(NULL);
    ag_arena_init(&s->arena, NULL, 0);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn,
                                                                 MHD_CONNECTION_INFO_CONNECTION_FD);
    s->fd = ci ? ci->connect_fd : -1;
    int rc = sse_start(s, req, &cred, &err);
    hub_web_call_cred_release(&cred);
    protobuf_c_message_free_unpacked(&req->base, NULL);
    int64_t until = ag_deadline_in_ms(WEB_SSE_FIRST_WAIT_MS);
    while (rc == 0 && s->out.len == 0 && !s->ended && ag_now_mono_ns() < until)
        sse_step(s, WEB_SSE_FIRST_WAIT_MS / 10);
    if (rc != 0 || (s->ended && s->end.code != AG_OK && s->events == 0)) {
        if (rc == 0)
            err = s->end;
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
