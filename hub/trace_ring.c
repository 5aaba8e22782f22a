/* hub/events.c - turning stored rows into wire messages: packed TraceEvents for the per-agent
 * ring (shared, refcounted slices: every follower sends the same bytes), and Agent messages.
 *
 * The ring holds at most HUB_RING_SIZE events and HUB_RING_BYTES of them: it only saves
 * followers a store read, so a big event is not worth pinning in every idle agent's memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

#include "common/rpc/pb.h"
#include "common/xalloc.h"
#include "hub/hub_internal.h"

grpc_slice hub_event_pack(const char *agent_id, const struct hub_store_event *ev)
{
    /* Store payloads carry a length, protobuf-c wants a C string. */
    char stackbuf[1024];
    char *payload = ev->payload_len < sizeof(stackbuf) ? stackbuf : ag_xmalloc(ev->payload_len + 1);
    memcpy(payload, ev->payload, ev->payload_len);
    payload[ev->payload_len] = '\0';
    Agentry__V1__TraceEvent te = AGENTRY__V1__TRACE_EVENT__INIT;
    te.agent_id = (char *)agent_id;
    te.seq = ev->seq;
    te.time_unix_nano = ev->time_ns;
    te.kind = (Agentry__V1__EventKind)ev->kind;
    te.payload = payload;
    te.node_id = (char *)(ev->node_id ? ev->node_id : "");
    size_t n = protobuf_c_message_get_packed_size(&te.base);
    grpc_slice s = grpc_slice_malloc(n);
    protobuf_c_message_pack(&te.base, GRPC_SLICE_START_PTR(s));
    if (payload != stackbuf)
        free(payload);
    return s;
}

static void ring_drop(struct hub_agent *a, size_t k)
{
    if (!a->ring[k].seq)
        return;
    a->ring_bytes -= GRPC_SLICE_LENGTH(a->ring[k].ev);
    grpc_slice_unref(a->ring[k].ev);
    a->ring[k].seq = 0;
}

void hub_agent_ring_put(struct hub_agent *a, uint64_t seq, grpc_slice ev)
{
    size_t k = seq % HUB_RING_SIZE, len = GRPC_SLICE_LENGTH(ev);
    ring_drop(a, k);
    if (len > HUB_RING_BYTES / 4) { /* followers read it from the store */
        grpc_slice_unref(ev);
        return;
    }
    /* Oldest first: the slots after k hold seq - HUB_RING_SIZE + 1 onwards. */
    for (size_t i = 1; i < HUB_RING_SIZE && a->ring_bytes + len > HUB_RING_BYTES; i++)
        ring_drop(a, (k + i) % HUB_RING_SIZE);
    a->ring[k].seq = seq;
    a->ring[k].ev = ev;
    a->ring_bytes += len;
}

void hub_agent_ring_clear(struct hub_agent *a)
{
    for (size_t k = 0; k < HUB_RING_SIZE; k++)
        ring_drop(a, k);
}

bool hub_agent_ring_get(struct hub_agent *a, uint64_t seq, grpc_slice *ev)
{
    size_t k = seq % HUB_RING_SIZE;
    if (a->ring[k].seq != seq)
        return false;
    *ev = grpc_slice_ref(a->ring[k].ev);
    return true;
}

/* {"text":"..."} without a JSON library: the INPUT payload is on the hot path of SendMessage.
 * The text is valid UTF-8 (checked at the door), so only quotes, backslashes and control
 * characters need escaping. The length is counted first so the arena holds exactly the payload,
 * not six times the input in case every byte needed \u00XX. */
static size_t escaped_len(unsigned char c)
{
    if (c == '"' || c == '\\' || c == '\n' || c == '\t')
        return 2;
    return c < 0x20 ? 6 : 1;
}

size_t hub_json_text_payload_len(const char *text)
{
    size_t n = sizeof("{\"text\":\"\"}") - 1;
    for (const unsigned char *s = (const unsigned char *)text; *s; s++)
        n += escaped_len(*s);
    return n;
}

const char *hub_json_text_payload(struct ag_arena *ar, const char *text)
{
    static const char hex[] = "0123456789abcdef";
    char *out = ag_arena_alloc(ar, hub_json_text_payload_len(text) + 1);
    char *p = out;
    memcpy(p, "{\"text\":\"", 9);
    p += 9;
    for (const unsigned char *s = (const unsigned char *)text; *s; s++) {
        unsigned char c = *s;
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c == '\n') {
            *p++ = '\\';
            *p++ = 'n';
        } else if (c == '\t') {
            *p++ = '\\';
            *p++ = 't';
        } else if (c < 0x20) {
            memcpy(p, "\\u00", 4);
            p[4] = hex[c >> 4];
            p[5] = hex[c & 15];
            p += 6;
        } else {
            *p++ = (char)c;
        }
    }
    memcpy(p, "\"}", 3); /* with the NUL */
    return out;
}

const char *hub_state_name(int state)
{
    static const char *const names[] = {"unspecified", "pending", "running", "idle",
                                        "yielded",     "failed",  "killed"};
    return state >= 0 && (size_t)state < AG_ARRAY_SIZE(names) ? names[state] : "unknown";
}

void hub_agent_count_usage(struct hub_agent_st *st, int kind, uint64_t input_tokens,
                           uint64_t output_tokens)
{
    hub_usage_count(&st->usage, kind, input_tokens, output_tokens);
    hub_usage_count(&st->turn_usage, kind, input_tokens, output_tokens);
}

void hub_agent_state_reason(struct hub *h, struct hub_agent *a, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_FAILED) {
        snprintf(buf, cap, "%s", a->st.last_error ? a->st.last_error : "");
    } else if (a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING && a->retry_token) {
        int64_t left = a->retry_at_ms - ag_now_mono_ms();
        snprintf(buf, cap, "retrying in %.1fs after: %s (attempt %u of at most %u in a row)",
                 left > 0 ? (double)left / 1000 : 0.0, a->st.streak_reason, a->st.attempt + 1,
                 h->opts.max_interruptions);
    } else if (a->st.state == AGENTRY__V1__AGENT_STATE__AGENT_STATE_PENDING) {
        hub_sched_explain(h->sched, &a->req, buf, cap);
    }
}

void hub_agent_to_pb(struct hub *h, struct hub_agent *a, Agentry__V1__Agent *out,
                     struct ag_arena *arena)
{
    agentry__v1__agent__init(out);
    out->id = ag_arena_strdup(arena, a->id);
    out->spec = a->spec; /* immutable for the agent's life */
    out->state = (Agentry__V1__AgentState)a->st.state;
    out->node_id = ag_arena_strdup(arena, a->st.node_id);
    out->request_id = a->request_id ? a->request_id : ""; /* immutable for the agent's life */
    out->epoch = a->st.epoch;
    out->last_seq = a->last_seq;
    out->created_unix_nano = a->created_ns;
    out->updated_unix_nano = a->st.updated_ns;
    Agentry__V1__Usage *u = ag_arena_alloc(arena, sizeof(*u));
    hub_usage_to_pb(&a->st.usage, u);
    out->usage = u;
    out->last_output = ag_arena_strdup(arena, a->st.last_output ? a->st.last_output : "");
    out->last_error = ag_arena_strdup(arena, a->st.last_error ? a->st.last_error : "");
    char reason[512];
    hub_agent_state_reason(h, a, reason, sizeof(reason));
    out->state_reason = ag_arena_strdup(arena, reason);
    out->turn_attempt = a->st.attempt;
    size_t pending = 0;
    for (size_t i = 0; i < a->ninbox; i++)
        if (a->inbox[i].seq > a->st.input_seq)
            pending++;
    out->pending_inputs = (uint32_t)pending;
}
