/* hub/events.c - turning stored rows into wire messages: packed TraceEvents for the per-agent
 * ring (shared, refcounted slices: every follower sends the same bytes), and Agent messages. */
#include <stdlib.h>
#include <string.h>

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

void hub_agent_ring_put(struct hub_agent *a, uint64_t seq, grpc_slice ev)
{
    size_t k = seq % HUB_RING_SIZE;
    if (a->ring[k].seq)
        grpc_slice_unref(a->ring[k].ev);
    a->ring[k].seq = seq;
    a->ring[k].ev = ev;
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
 * characters need escaping. */
const char *hub_json_text_payload(struct ag_arena *ar, const char *text)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(text);
    char *out = ag_arena_alloc(ar, n * 6 + sizeof("{\"text\":\"\"}"));
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

void hub_agent_to_pb(struct hub_agent *a, Agentry__V1__Agent *out, struct ag_arena *arena)
{
    agentry__v1__agent__init(out);
    out->id = ag_arena_strdup(arena, a->id);
    out->spec = a->spec; /* immutable for the agent's life */
    out->state = (Agentry__V1__AgentState)a->st.state;
    out->node_id = ag_arena_strdup(arena, a->st.node_id);
    out->epoch = a->st.epoch;
    out->last_seq = a->last_seq;
    out->created_unix_nano = a->created_ns;
    out->updated_unix_nano = a->st.updated_ns;
    Agentry__V1__Usage *u = ag_arena_alloc(arena, sizeof(*u));
    agentry__v1__usage__init(u);
    u->input_tokens = a->st.usage[0];
    u->output_tokens = a->st.usage[1];
    u->model_calls = (uint32_t)a->st.usage[2];
    u->tool_calls = (uint32_t)a->st.usage[3];
    out->usage = u;
    out->last_output = ag_arena_strdup(arena, a->st.last_output ? a->st.last_output : "");
    out->last_error = ag_arena_strdup(arena, a->st.last_error ? a->st.last_error : "");
    size_t pending = 0;
    for (size_t i = 0; i < a->ninbox; i++)
        if (a->inbox[i].seq > a->st.input_seq)
            pending++;
    out->pending_inputs = (uint32_t)pending;
}
