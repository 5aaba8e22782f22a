/* tests/unit/test-wk-outbox.c - the node's outgoing events (worker/outbox.c): the wire form of a
 * batch checked against the generated descriptors, the byte bounds of the outbox and of the
 * unacked batches, completions on ack and on loss, and the wake-ups of parked runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agentry/v1/node.pb-c.h"
#include "common/arena.h"
#include "common/rpc/pb.h"
#include "worker/outbox.h"

/* A packed NodeEvent for agent with a payload of n 'x'. */
static uint8_t *event(const char *agent, uint64_t epoch, size_t n, size_t *len)
{
    char *payload = malloc(n + 1);
    memset(payload, 'x', n);
    payload[n] = '\0';
    Agentry__V1__NodeEvent ev = AGENTRY__V1__NODE_EVENT__INIT;
    ev.agent_id = (char *)agent;
    ev.epoch = epoch;
    ev.kind = AGENTRY__V1__EVENT_KIND__EVENT_KIND_TOOL_CALL;
    ev.payload = payload;
    *len = agentry__v1__node_event__get_packed_size(&ev);
    uint8_t *buf = malloc(*len);
    agentry__v1__node_event__pack(&ev, buf);
    free(payload);
    return buf;
}

/* The concatenated batch decodes, with the generated descriptor, into the EventBatch it stands
 * for: its id, and each event byte for byte. Sizes cross the one- and two-byte varint lengths,
 * and the id needs two bytes. */
static void test_pack_decodes_with_descriptor(void **state)
{
    (void)state;
    struct wk_outbox o;
    wk_outbox_init(&o, 0, 0);
    const size_t sizes[] = {0, 100, 200, 70000};
    uint8_t *copies[4];
    size_t lens[4];
    for (size_t i = 0; i < 4; i++) {
        uint8_t *buf = event(i % 2 ? "a2" : "a1", i + 1, sizes[i], &lens[i]);
        copies[i] = malloc(lens[i]);
        memcpy(copies[i], buf, lens[i]);
        wk_outbox_push(&o, buf, lens[i], NULL, NULL);
    }
    o.next_batch_id = 299;
    struct wk_outbox_batch *b = wk_outbox_next_batch(&o, 1024, 1 << 20);
    assert_non_null(b);
    assert_int_equal(b->id, 300);
    assert_int_equal(b->n, 4);

    grpc_byte_buffer *bb = wk_outbox_pack(b);
    struct ag_arena ar;
    ag_arena_init(&ar, NULL, 0);
    struct ag_err err = AG_ERR_INIT;
    Agentry__V1__NodeMessage *m = rpc_pb_unpack(bb, &agentry__v1__node_message__descriptor, &ar,
                                                &err);
    assert_non_null(m);
    assert_int_equal(m->msg_case, AGENTRY__V1__NODE_MESSAGE__MSG_EVENTS);
    assert_int_equal(m->events->batch_id, 300);
    assert_int_equal(m->events->n_events, 4);
    for (size_t i = 0; i < 4; i++) {
        const Agentry__V1__NodeEvent *e = m->events->events[i];
        assert_int_equal(agentry__v1__node_event__get_packed_size(e), lens[i]);
        uint8_t *again = malloc(lens[i] ? lens[i] : 1);
        agentry__v1__node_event__pack(e, again);
        assert_memory_equal(again, copies[i], lens[i]);
        assert_int_equal(e->epoch, i + 1);
        assert_int_equal(strlen(e->payload), sizes[i]);
        free(again);
        free(copies[i]);
    }
    /* And the whole message is what protobuf-c would have written. */
    size_t want = protobuf_c_message_get_packed_size(&m->base);
    assert_int_equal(rpc_pb_length(bb), want);
    ag_arena_release(&ar);
    grpc_byte_buffer_destroy(bb);
    wk_outbox_release(&o);
}

struct counts {
    int stored, lost, aborted, woken;
    char order[16];
    size_t norder;
};

static void on_done(void *arg, const struct ag_err *err)
{
    struct counts *c = arg;
    if (err && err->code == AG_ABORTED) {
        c->aborted++;
    } else if (err) {
        assert_int_equal(err->code, AG_UNAVAILABLE);
        c->lost++;
    } else {
        c->stored++;
    }
}

static void on_wake(void *arg)
{
    ((struct counts *)arg)->woken++;
}

static void push(struct wk_outbox *o, size_t payload, struct counts *c)
{
    size_t len;
    uint8_t *buf = event("a1", 1, payload, &len);
    wk_outbox_push(o, buf, len, on_done, c);
}

/* The outbox says no at its bound and wakes the waiters once a batch leaves; the unacked list
 * stops sends at its bound until an ack, whose completions say "stored". */
static void test_bounds_and_acks(void **state)
{
    (void)state;
    struct counts c = {0};
    struct wk_outbox o;
    size_t len;
    free(event("a1", 1, 100, &len)); /* each event below is len bytes */
    wk_outbox_init(&o, 2 * len, 3 * len);
    struct wk_outbox_calls calls;
    wk_outbox_calls_init(&calls);

    push(&o, 100, &c);
    assert_true(wk_outbox_room(&o, on_wake, &c));
    assert_false(wk_outbox_full_hint(&o));
    push(&o, 100, &c);
    assert_true(wk_outbox_full_hint(&o));
    assert_false(wk_outbox_room(&o, on_wake, &c));
    assert_false(wk_outbox_room(&o, on_wake, &c));
    wk_outbox_wake_if_room(&o, &calls); /* still full */
    assert_true(ag_list_empty(&calls.wake));

    struct wk_outbox_batch *b1 = wk_outbox_next_batch(&o, 1024, 1 << 20);
    assert_non_null(b1);
    assert_int_equal(b1->n, 2);
    assert_int_equal(ag_queue_bytes(&o.out), 0);
    assert_false(wk_outbox_full_hint(&o));
    assert_int_equal(ag_queue_bytes(&o.unacked), 2 * len);
    wk_outbox_wake_if_room(&o, &calls);
    wk_outbox_calls_run(&calls);
    assert_int_equal(c.woken, 2);

    /* Under the unacked bound: one more batch goes (and takes it over the bound). */
    push(&o, 100, &c);
    push(&o, 100, &c);
    struct wk_outbox_batch *b2 = wk_outbox_next_batch(&o, 1, 1 << 20); /* one event a batch */
    assert_non_null(b2);
    assert_int_equal(ag_queue_bytes(&o.unacked), 3 * len);
    assert_null(wk_outbox_next_batch(&o, 1, 1 << 20)); /* at the bound: held back */
    assert_int_equal(ag_queue_len(&o.out), 1);

    assert_false(wk_outbox_ack(&o, 99, NULL, 0, &calls));
    assert_true(wk_outbox_ack(&o, b1->id, NULL, 0, &calls));
    wk_outbox_calls_run(&calls);
    assert_int_equal(c.stored, 2);
    assert_non_null(wk_outbox_next_batch(&o, 1, 1 << 20));
    assert_int_equal(ag_queue_len(&o.out), 0);
    wk_outbox_release(&o);
}

/* Acks normally come in order; one that does not still finds its batch, and the others stay.
 * The gauges follow the queues. */
static void test_ack_out_of_order(void **state)
{
    (void)state;
    struct counts c = {0};
    struct wk_outbox o;
    wk_outbox_init(&o, 0, 0);
    struct wk_outbox_batch *b[3];
    for (int i = 0; i < 3; i++) {
        push(&o, 10, &c);
        b[i] = wk_outbox_next_batch(&o, 1024, 1 << 20);
    }
    uint64_t ids[3] = {b[0]->id, b[1]->id, b[2]->id};
    struct ag_queue_stats st;
    ag_queue_gauge_read(&o.unacked.gauge, &st);
    assert_int_equal(st.depth, 3);
    struct wk_outbox_calls calls;
    wk_outbox_calls_init(&calls);
    assert_true(wk_outbox_ack(&o, ids[1], NULL, 0, &calls));
    assert_false(wk_outbox_ack(&o, ids[1], NULL, 0, &calls));
    assert_true(wk_outbox_ack(&o, ids[0], NULL, 0, &calls));
    assert_true(wk_outbox_ack(&o, ids[2], NULL, 0, &calls));
    wk_outbox_calls_run(&calls);
    assert_int_equal(c.stored, 3);
    ag_queue_gauge_read(&o.unacked.gauge, &st);
    assert_int_equal(st.depth, 0);
    assert_int_equal(st.high_water, 3);
    wk_outbox_release(&o);
}

/* EventAck.seqs: an event stored at seq 0 was discarded as stale, and its completion says so. */
static void test_ack_with_discarded_events(void **state)
{
    (void)state;
    struct counts c = {0};
    struct wk_outbox o;
    wk_outbox_init(&o, 0, 0);
    for (int i = 0; i < 3; i++)
        push(&o, 10, &c);
    struct wk_outbox_batch *b = wk_outbox_next_batch(&o, 1024, 1 << 20);
    const uint64_t seqs[] = {7, 0, 8};
    struct wk_outbox_calls calls;
    wk_outbox_calls_init(&calls);
    assert_true(wk_outbox_ack(&o, b->id, seqs, 3, &calls));
    wk_outbox_calls_run(&calls);
    assert_int_equal(c.stored, 2);
    assert_int_equal(c.aborted, 1);
    wk_outbox_release(&o);
}

/* A lost stream fails every completion, sent or not, and wakes every parked run. */
static void test_drop_all(void **state)
{
    (void)state;
    struct counts c = {0};
    struct wk_outbox o;
    wk_outbox_init(&o, 1, 0);
    push(&o, 10, &c);
    assert_non_null(wk_outbox_next_batch(&o, 1024, 1 << 20));
    push(&o, 10, &c);
    assert_false(wk_outbox_room(&o, on_wake, &c));
    struct wk_outbox_calls calls;
    wk_outbox_calls_init(&calls);
    struct ag_err why = AG_ERR_INIT;
    ag_err_set(&why, AG_UNAVAILABLE, "stream lost");
    wk_outbox_drop_all(&o, &why, &calls);
    assert_true(ag_queue_empty(&o.out) && ag_queue_empty(&o.unacked));
    wk_outbox_calls_run(&calls);
    assert_int_equal(c.lost, 2);
    assert_int_equal(c.stored, 0);
    assert_int_equal(c.woken, 1);
    assert_true(wk_outbox_room(&o, on_wake, &c));
    wk_outbox_release(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_decodes_with_descriptor),
        cmocka_unit_test(test_bounds_and_acks),
        cmocka_unit_test(test_ack_out_of_order),
        cmocka_unit_test(test_ack_with_discarded_events),
        cmocka_unit_test(test_drop_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
