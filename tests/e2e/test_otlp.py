"""tests/e2e/test_otlp.py - logs and traces out (issue 18 point 4).

- A hub started with --log-format json writes one JSON object per line, hub.started among them.
"""
import json
import os
import re
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


class JsonLogTest(unittest.TestCase):

    def test_hub_json_lines_parse(self):
        d = tempfile.mkdtemp(prefix="agentry-e2e-jsonlog-")
        self.addCleanup(shutil.rmtree, d, True)
        log = os.path.join(d, "hub.log")
        args = [H.AGENTRY_BIN, "hub", "--listen", "127.0.0.1:%d" % H.free_port(), "--store",
                "sqlite:" + os.path.join(d, "h.db"), "--log-format", "json"]
        p = H.Proc("hub", args, log).start()
        try:
            H.wait_for(lambda: '"event":"hub.started"' in p.text(), timeout=15,
                       what="hub.started in JSON")
        finally:
            problem = p.stop()
        self.assertIsNone(problem)
        lines = [x for x in p.text().splitlines() if x.strip()]
        objs = [json.loads(x) for x in lines]  # every line is one JSON object
        started = [o for o in objs if o.get("event") == "hub.started"]
        self.assertEqual(len(started), 1, lines)
        o = started[0]
        self.assertEqual((o["level"], o["comp"]), ("info", "hub"))
        self.assertRegex(o["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertTrue(re.match(r"^\d+$", o["port"]), o)
        self.assertIn("hub.stopped", [x.get("event") for x in objs])


if __name__ == "__main__":
    H.main()
