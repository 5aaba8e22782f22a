"""tests/e2e/test_schedules.py - cron schedules (hub.proto CreateSchedule ...; docs/schedules.md).

- Exactly once per slot across a SIGKILLed hub: three schedules (every 2 s with "skip", every
  4 s with "skip" and with "catch_up_once") fire one agent per slot, each agent's request id
  naming its slot; the hub is SIGKILLed and started again on the same store ~10 s later. No
  slot ever has two agents, the slots keep coming every period before and after, the "skip"
  ones fired nothing while the hub was down, and the "catch_up_once" one fired exactly the
  latest slot it missed. Each schedule's `fires` counts its agents, also when the hub died
  between a slot's spawn and the schedule's own update. The same on PostgreSQL.
- Pause (no slot fires, next_fire 0), resume (from the next slot on, the paused ones skipped),
  delete (its agents stay), the request id's idempotency.
- A standby's takeover (etcd and PostgreSQL, as test_standby.py): the leader is SIGSTOPped
  while it fires two schedules (every second); the standby takes over, the old leader, continued, is fenced
  (exit 1). No slot has two agents, "skip" fired nothing between the stop and the new leader's
  start, and "catch_up_once" fired the latest slot it missed, once.
- Refusals: a bad cron names its field (INVALID_ARGUMENT; exit 2 from the CLI), a bad missed
  policy, the reserved label. The CLI: create with a spec file, ls, get --json, pause, delete.

Downtime is made with sleep on purpose (slots must pass while no hub runs); everything else
waits on conditions.
"""
import datetime
import os
import re
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import grpc  # noqa: E402
import test_standby  # noqa: E402
from test_store_pg import OnPostgres  # noqa: E402

RID = re.compile(r"^schedule/([0-9a-z]{16})/(\d+)$")
LABEL = "agentry.dev/schedule"


def log_time(text, event):
    """The Unix time of the first log line of event in text."""
    m = re.search(r"ts=(\S+) level=\w+ comp=\w+ event=%s " % re.escape(event), text)
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class Schedules:
    """What the test classes share: a cluster of one node (NODES, CAPACITY) and helpers."""

    NODES = 1
    CAPACITY = 16

    def create(self, cron, missed="", request_id="", text="final tick", ns="", spec=None):
        S = self.s.hub
        sc = S.Schedule(cron=cron, spec=spec or self.c.spec(()), input=text, missed=missed,
                        namespace=ns)
        return self.c.hub.CreateSchedule(S.CreateScheduleRequest(schedule=sc,
                                                                 request_id=request_id),
                                         timeout=10)

    def get(self, sid):
        return self.c.hub.GetSchedule(self.s.hub.GetScheduleRequest(schedule_id=sid), timeout=10)

    def slots(self, sid):
        """{slot: [agent ids]} of the agents schedule sid spawned (found by its label)."""
        r = self.c.hub.ListAgents(self.s.hub.ListAgentsRequest(
            label_selector="%s=%s" % (LABEL, sid), page_size=1000), timeout=10)
        out = {}
        for a in r.agents:
            m = RID.match(a.request_id)
            self.assertTrue(m, a.request_id)
            self.assertEqual((m.group(1), a.schedule_id), (sid, sid))
            out.setdefault(int(m.group(2)), []).append(a.id)
        return out

    def wait_slot(self, sid, at_least, timeout=20):
        """Waits until schedule sid has fired a slot >= at_least; returns its slots."""
        return H.wait_for(lambda: (lambda s: s if s and max(s) >= at_least else None)(
            self.slots(sid)), timeout, what="schedule %s to fire slot %d" % (sid, at_least))

    def assert_once(self, slots, period):
        for slot, agents in slots.items():
            self.assertEqual(len(agents), 1, "slot %d fired %d agents" % (slot, len(agents)))
            self.assertEqual(slot % period, 0, "slot %d is not one of the cron's" % slot)

    def assert_every(self, slots, period, lo, hi):
        """Every slot of the cron in [lo, hi] fired."""
        want = [s for s in range(lo, hi + 1) if s % period == 0]
        self.assertEqual(sorted(s for s in slots if lo <= s <= hi), want)

    def wait_counted(self, sid):
        """The schedule's fires and last fire agree with its agents (once its updates landed)."""
        def ok():
            sl, sc = self.slots(sid), self.get(sid)
            last = max(sl)
            return (sc.fires == len(sl) and sc.last_fire_unix_nano == last * 10**9 and
                    sc.last_agent_id == sl[last][0])
        H.wait_for(ok, 10, what="schedule %s to count its fires" % sid)

    def sigkill_restart(self, sleep_until):
        """SIGKILLs the hub, starts it again at sleep_until on the same store; returns when it
        was killed and when the new one loaded its schedules (from its log)."""
        c = self.c
        port = c.port
        c.hub_proc.sigkill()
        c.retired.append(c.hub_proc)
        c.hub_proc = None
        killed = time.time()
        time.sleep(max(0.0, sleep_until - time.time()))
        c.start_hub(port=port)
        c.wait_registered("n1", 1)
        return killed, log_time(c.hub_log(), "schedule.loaded")


class RestartMixin(Schedules):
    def test_exactly_once_across_sigkill(self):
        a = self.create("*/2 * * * * *").id
        b = self.create("*/4 * * * * *").id
        k = self.create("*/4 * * * * *", missed="catch_up_once").id
        first = self.get(a).next_fire_unix_nano // 10**9
        self.wait_slot(b, first + 8)
        self.wait_slot(k, first + 8)

        # Killed some time after a slot of all three; restarted in the middle of the period
        # after the next two: +4 and +8 pass while no hub runs. What the new hub missed is
        # every slot up to when it loaded the schedules.
        base = int(time.time()) // 4 * 4
        killed, loaded = self.sigkill_restart(base + 10)
        on_time = int(loaded) // 4 * 4 + 4  # the first slot of b and k after the load
        self.wait_slot(b, on_time + 8)
        self.wait_slot(k, on_time + 8)
        sa, sb, sk = self.wait_slot(a, on_time + 8), self.slots(b), self.slots(k)

        for sl, period in ((sa, 2), (sb, 4), (sk, 4)):
            self.assert_once(sl, period)
        # Before the kill (but the slot right before it, whose spawn may not have committed) and
        # after the restart, every slot fired.
        self.assert_every(sa, 2, min(sa), base - 2)
        self.assert_every(sb, 4, min(sb), base - 4)
        self.assert_every(sa, 2, int(loaded) // 2 * 2 + 2, on_time + 8)
        self.assert_every(sb, 4, on_time, on_time + 8)
        self.assert_every(sk, 4, on_time, on_time + 8)
        # skip: nothing of what passed while the hub was down (the slot at the kill may have
        # fired just before it).
        self.assertEqual([s for s in sa if killed < s <= loaded], [])
        self.assertEqual([s for s in sb if base < s <= loaded], [])
        # catch_up_once: the latest missed slot, once; none of the earlier missed ones.
        self.assertEqual([s for s in sk if base < s <= loaded], [on_time - 4], sorted(sk))
        for sid in (a, b, k):
            self.wait_counted(sid)
        self.assertIn("event=schedule.fired schedule=%s slot=%d" % (k, on_time - 4),
                      self.c.hub_log())


class RestartTest(RestartMixin, H.ClusterTestCase):
    pass


class PgRestartTest(OnPostgres, RestartMixin, H.ClusterTestCase):
    pass


class ScheduleTest(Schedules, H.ClusterTestCase):
    def test_pause_resume_delete(self):
        c, S = self.c, self.s.hub
        sc = self.create("*/2 * * * * *", request_id="every-2s")
        self.assertEqual(self.create("*/5 * * * *", request_id="every-2s").id, sc.id,
                         "a request id returns its schedule")
        self.assertEqual(sc.cron, "*/2 * * * * *")
        self.assertEqual(sc.missed, "skip")
        self.assertGreater(sc.next_fire_unix_nano, sc.created_unix_nano)
        self.wait_slot(sc.id, sc.next_fire_unix_nano // 10**9)

        p = c.hub.PauseSchedule(S.PauseScheduleRequest(schedule_id=sc.id), timeout=10)
        paused_at = time.time()
        self.assertTrue(p.paused)
        self.assertEqual(p.next_fire_unix_nano, 0)
        again = c.hub.PauseSchedule(S.PauseScheduleRequest(schedule_id=sc.id), timeout=10)
        self.assertTrue(again.paused, "pausing is idempotent")
        time.sleep(3)  # slots pass while paused
        self.assertEqual([s for s in self.slots(sc.id) if s > paused_at], [])

        resumed_at = time.time()
        r = c.hub.ResumeSchedule(S.ResumeScheduleRequest(schedule_id=sc.id), timeout=10)
        self.assertFalse(r.paused)
        self.assertGreater(r.next_fire_unix_nano, int(resumed_at) * 10**9)
        sl = self.wait_slot(sc.id, r.next_fire_unix_nano // 10**9)
        self.assertEqual([s for s in sl if paused_at < s < resumed_at], [],
                         "the slots passed while paused are skipped")
        self.assert_once(sl, 2)
        self.wait_counted(sc.id)
        listed = c.hub.ListSchedules(S.ListSchedulesRequest(), timeout=10).schedules
        self.assertIn(sc.id, [x.id for x in listed])

        c.hub.DeleteSchedule(S.DeleteScheduleRequest(schedule_id=sc.id), timeout=10)
        deleted_at = time.time()
        for call in (lambda: self.get(sc.id),
                     lambda: c.hub.DeleteSchedule(S.DeleteScheduleRequest(schedule_id=sc.id),
                                                  timeout=10)):
            with self.assertRaises(grpc.RpcError) as e:
                call()
            self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)
        listed = c.hub.ListSchedules(S.ListSchedulesRequest(), timeout=10).schedules
        self.assertNotIn(sc.id, [x.id for x in listed])
        time.sleep(2.5)
        after = self.slots(sc.id)
        self.assertEqual([s for s in after if s > deleted_at + 0.5], [])
        for agents in after.values():  # the agents stay
            self.assertEqual(c.get(agents[0]).schedule_id, sc.id)

    def test_refusals(self):
        def refused(what, want, **kw):
            with self.assertRaises(grpc.RpcError) as e:
                self.create(**kw)
            self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, what)
            self.assertIn(want, e.exception.details(), what)
        refused("range", "minute field '61'", cron="61 * * * *")
        refused("name", "day-of-week field 'funday'", cron="0 9 * * funday")
        refused("fields", "has 4 fields", cron="* * * *")
        refused("never", "never fires", cron="0 0 30 2 *")
        refused("missed", "missed 'sometimes'", cron="@daily", missed="sometimes")
        refused("namespace", "namespace", cron="@daily", ns="Not_OK")
        spec = self.c.spec(())
        spec.labels[LABEL] = "mine"
        refused("label", LABEL, cron="@daily", spec=spec)

    def test_cli(self):
        c = self.c
        env = {"AGENTRY_HUB": c.addr}
        r = H.run_cli(["schedule", "create", "--cron", "61 * * * *"], env=env)
        self.assertIn("minute field '61'", H.one_error_line(self, r, rc=2))
        r = H.run_cli(["schedule", "create", "--cron", "@daily", "--missed", "never"], env=env)
        self.assertIn("--missed", H.one_error_line(self, r, rc=2))
        with tempfile.TemporaryDirectory() as d:
            spec = os.path.join(d, "tick.yaml")
            with open(spec, "w") as f:
                f.write("name: ticker\nmodel: mock\ntools: [echo]\nlabels:\n  team: core\n")
            r = H.run_cli(["schedule", "create", "--cron", "*/2 * * * * *", "--spec", spec,
                           "--input", "final tick", "--missed", "catch_up_once"], env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        sid = r.stdout.strip()
        sl = self.wait_slot(sid, 0)
        a = c.get(sl[max(sl)][0])
        self.assertEqual((a.spec.name, a.spec.labels["team"], a.spec.labels[LABEL]),
                         ("ticker", "core", sid))
        r = H.run_cli(["schedule", "ls"], env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines()[0].split(),
                         ["ID", "CRON", "NEXT", "LAST", "FIRES", "PAUSED"])
        self.assertIn(sid, r.stdout)
        r = H.run_cli(["schedule", "get", "--json", sid], env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        j = H.json.loads(r.stdout)
        self.assertEqual((j["id"], j["cron"], j["missed"], j["spec"]["name"]),
                         (sid, "*/2 * * * * *", "catch_up_once", "ticker"))
        for sub in ("pause", "resume", "delete"):
            r = H.run_cli(["schedule", sub, sid], env=env)
            self.assertEqual((r.returncode, r.stdout.strip()), (0, sid), r.stderr)
        r = H.run_cli(["schedule", "get", sid], env=env)
        self.assertIn("no schedule with id", H.one_error_line(self, r, rc=1))


class TakeoverTest(test_standby.Standby):
    """test_standby's leader and standby (its own tests are not run again here)."""

    test_a_election_and_failover_under_load = None
    test_b_stopped_leader_is_fenced = None
    test_c_hub_without_etcd_is_refused = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        test_standby.Standby.starts = 0  # its start_hub counts log files there

    def slots(self, hub, sid):
        r = hub.ListAgents(self.s.hub.ListAgentsRequest(label_selector="%s=%s" % (LABEL, sid),
                                                        page_size=1000), timeout=10)
        out = {}
        for a in r.agents:
            out.setdefault(int(RID.match(a.request_id).group(2)), []).append(a.id)
        return out

    def test_slots_fire_once_across_a_takeover(self):
        self.start_hub("ha")
        self.wait_log("ha", "event=hub.started")
        self.start_hub("hb")
        self.wait_log("hb", "event=cluster.standby")
        ha, S = self.stub("ha"), self.s.hub
        ids = []
        for missed in ("skip", "catch_up_once"):
            sc = S.Schedule(cron="* * * * * *", spec=self.T.AgentSpec(), input="final tick",
                            missed=missed)
            ids.append(ha.CreateSchedule(S.CreateScheduleRequest(schedule=sc), timeout=10).id)
        every, catch = ids
        H.wait_for(lambda: len(self.slots(ha, catch)) >= 2, 15, what="two slots fired")
        seen = max(self.slots(ha, catch))
        H.wait_for(lambda: max(self.slots(ha, catch)) > seen, 15, what="the next slot")
        # Stopped right after a slot: the lease outlives the stop by over a second (etcd
        # renews it every third of its TTL), so at least the next slot passes with no leader.
        stopped_at = time.time()
        self.procs["ha"].signal(signal.SIGSTOP)
        self.wait_log("hb", "event=hub.started")
        loaded = log_time(self.procs["hb"].text(), "schedule.loaded")
        hb = self.stub("hb")
        H.wait_for(lambda: max(self.slots(hb, every)) >= loaded + 3, 15,
                   what="the new leader to fire")
        self.procs["ha"].signal(signal.SIGCONT)
        self.assertEqual(self.procs["ha"].wait_exit(30), 1, self.procs["ha"].tail())
        self.procs["ha"].expect_killed = True  # its exit status was checked here

        se, sc = self.slots(hb, every), self.slots(hb, catch)
        for sl in (se, sc):
            for slot, agents in sl.items():
                self.assertEqual(len(agents), 1, "slot %d fired %d agents" % (slot, len(agents)))
        self.assertEqual([s for s in se if stopped_at < s <= loaded], [], "skip")
        last_before = max(s for s in sc if s <= stopped_at)
        latest_missed = int(loaded)
        self.assertGreater(latest_missed, last_before, "a slot passed during the takeover")
        self.assertEqual([s for s in sc if last_before < s <= loaded], [latest_missed],
                         "catch_up_once: the latest missed slot, once")
        after = [s for s in se if s > loaded]
        self.assertEqual(after, list(range(min(after), max(after) + 1)), "then every slot")


if __name__ == "__main__":
    H.main()
