"""tests/e2e/test_node_client.py - "a client in another language", in Node.js: the user program
tests/node_client/client.mjs (@grpc/grpc-js, with the protos loaded at run time by
@grpc/proto-loader) against a real hub and node.

What is checked: it spawns agents with labels and follows one agent's Trace to its final answer
(seqs 1, 2, 3... and the event kinds of a turn with one echo call); ListAgents by label selector
gives what hub.proto documents for each form (=, ==, !=, key, !key, several terms; a set-based
term is INVALID_ARGUMENT); KillAgent twice answers OK both times, the second with the first
KILLED event's seq and already_killed, and the trace holds one KILLED event.

The npm packages are pinned in tests/node_client/package-lock.json and installed at the first run
into the build directory (H.npm_ci). Without node and npm, or without the registry, the test is
skipped (exit 77, ctest's SKIP_RETURN_CODE) with the reason printed.
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

SKIP = 77
CLIENT_DIR = os.path.join(H.AGENTRY_SRC, "tests", "node_client")
CACHE = os.path.join(os.path.dirname(os.path.abspath(H.AGENTRY_BIN)), "node-client-tests")
GRPC_JS = os.path.join(CACHE, "node_modules", "@grpc", "grpc-js", "package.json")


class NodeClientTest(H.ClusterTestCase):
    NODES = 1
    CAPACITY = 4

    def test_spawn_select_by_labels_and_kill_twice(self):
        script = os.path.join(CACHE, "client.mjs")  # beside its node_modules
        shutil.copy(os.path.join(CLIENT_DIR, "client.mjs"), script)
        r = subprocess.run(["node", script, os.path.join(H.AGENTRY_SRC, "api"), self.c.addr],
                           capture_output=True, text=True, timeout=90, cwd=CACHE)
        self.assertEqual(r.returncode, 0, "client.mjs failed:\n%s" % r.stderr[-3000:])
        out = json.loads(r.stdout)
        self.assertEqual(out["seqs"], [str(i) for i in range(1, len(out["seqs"]) + 1)])
        self.assertEqual([k[len("EVENT_KIND_"):].lower() for k in out["kinds"]],
                         ["spawned", "input", "assigned", "model_request", "model_reply",
                          "tool_call", "tool_result", "model_request", "model_reply", "final"])
        self.assertEqual(out["output"], "hi from node")
        self.assertEqual(out["found"], {
            "": ["gold-a", "plain-a", "silver-b"],
            "team=a": ["gold-a", "plain-a"],
            "team==b": ["silver-b"],
            "team!=a": ["silver-b"],
            "tier": ["gold-a", "silver-b"],
            "!tier": ["plain-a"],
            "team=c": [],
            "team in (a,b)": "INVALID_ARGUMENT",
        })
        first, again = out["kills"]
        self.assertFalse(first["already_killed"])
        self.assertEqual(again, {"seq": first["seq"], "already_killed": True})
        self.assertEqual(out["state"], "AGENT_STATE_KILLED")
        self.assertEqual(out["killed"], [{"seq": first["seq"], "reason": "first"}])


if __name__ == "__main__":
    why = H.npm_ci(CLIENT_DIR, CACHE, GRPC_JS)
    if why:
        print("SKIP: the Node.js client test cannot run: %s" % why)
        sys.exit(SKIP)
    H.main()
