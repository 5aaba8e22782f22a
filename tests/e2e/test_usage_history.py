"""tests/e2e/test_usage_history.py - GetUsageHistory (hub.proto), the dashboard's heat-map data.

Mock-model agents run turns in two namespaces of their own; the hub's one-minute buckets then
hold, by model, exactly the tokens and model calls the agents' Usage counts (summed over the
window, namespaces merged), and the namespace filter keeps to one namespace. Bad windows are
INVALID_ARGUMENT naming the rule. A restarted hub starts empty (memory only), though the agents'
Usage, read back from the store, is still there.
"""
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

import grpc  # noqa: E402


class UsageHistoryTest(H.ClusterTestCase):
    NODES = 2

    def ns(self, what):
        return "%s-%s" % (what, uuid.uuid4().hex[:8])

    def history(self, **kw):
        return self.c.hub.GetUsageHistory(self.s.hub.GetUsageHistoryRequest(**kw), timeout=10)

    def run_in(self, ns, text):
        spec = self.T.AgentSpec(tools=["echo"])
        aid = self.c.hub.Spawn(self.s.hub.SpawnRequest(spec=spec, input=text, namespace=ns),
                               timeout=10).agent_id
        self.c.wait_turn_end(aid)
        return aid

    def totals(self, h, model="mock"):
        s = [x for x in h.series if x.model == model]
        self.assertEqual(len(s), 1, h)
        s = s[0]
        for field in (s.input_tokens, s.output_tokens, s.cost_usd, s.model_calls):
            self.assertEqual(len(field), h.buckets)
        return sum(s.input_tokens), sum(s.output_tokens), sum(s.model_calls)

    def usage(self, ids):
        u = [self.c.get(a).usage for a in ids]
        return (sum(x.input_tokens for x in u), sum(x.output_tokens for x in u),
                sum(x.model_calls for x in u))

    def test_tokens_match_usage_and_namespace_filter(self):
        a_ns, b_ns = self.ns("ua"), self.ns("ub")
        a_ids = [self.run_in(a_ns, "echo one; final two"), self.run_in(a_ns, "final hello")]
        b_ids = [self.run_in(b_ns, "echo a longer text to count; echo more; final done")]
        a, b = self.usage(a_ids), self.usage(b_ids)
        self.assertGreater(a[0], 0)
        self.assertGreater(b[2], 1)

        h = self.history(namespace=a_ns)
        self.assertEqual((h.bucket_seconds, h.buckets), (60, 60))
        self.assertEqual(self.totals(h), a)
        self.assertEqual(self.totals(self.history(namespace=b_ns)), b)
        # An hour in five-minute buckets: the same sums; the newest bucket ends after now.
        h = self.history(namespace=a_ns, bucket_seconds=300, buckets=12)
        self.assertEqual((h.bucket_seconds, h.buckets), (300, 12))
        self.assertEqual(self.totals(h), a)
        end = h.start_unix_nano + 12 * 300 * 10**9
        self.assertTrue(0 < end - time.time_ns() <= 60 * 10**9 + 10**9, (end, time.time_ns()))
        self.assertEqual(h.start_unix_nano % (60 * 10**9), 0)
        # Every namespace: at least both (other tests' agents may add to "mock").
        everyone = self.totals(self.history(buckets=1440))
        for i in range(3):
            self.assertGreaterEqual(everyone[i], a[i] + b[i])
        # A namespace with nothing: no series.
        self.assertEqual(list(self.history(namespace=self.ns("none")).series), [])

    def test_bad_arguments(self):
        for kw, needle in (({"bucket_seconds": 90}, "multiple of 60"),
                           ({"bucket_seconds": 7200}, "multiple of 60"),
                           ({"bucket_seconds": 3600, "buckets": 25}, "24 hours"),
                           ({"buckets": 1441}, "24 hours"),
                           ({"namespace": "Bad_Name"}, "namespace")):
            with self.assertRaises(grpc.RpcError) as cm:
                self.history(**kw)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT,
                             cm.exception.details())
            self.assertIn(needle, cm.exception.details())
        # The largest windows are fine.
        self.assertEqual(self.history(bucket_seconds=3600, buckets=24).buckets, 24)
        self.assertEqual(self.history(bucket_seconds=60, buckets=1440).buckets, 1440)

    def test_zz_restart_starts_empty(self):  # last: restarts the hub
        ns = self.ns("ur")
        aid = self.run_in(ns, "final before restart")
        self.assertEqual(self.totals(self.history(namespace=ns)), self.usage([aid]))
        port = self.c.port
        self.c.stop_hub()
        self.c.start_hub(port=port)
        self.assertGreater(self.c.get(aid).usage.input_tokens, 0)  # from the store
        self.assertEqual(list(self.history(namespace=ns).series), [])  # memory only
        # Counting goes on after the restart, from the new events only.
        before = self.usage([aid])
        seq = self.c.send(aid, "final after").seq
        self.c.wait_turn_end(aid, after_seq=seq)
        after = self.usage([aid])
        self.assertEqual(self.totals(self.history(namespace=ns)),
                         tuple(after[i] - before[i] for i in range(3)))


if __name__ == "__main__":
    H.main()
