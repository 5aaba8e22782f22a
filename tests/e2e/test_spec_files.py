"""tests/e2e/test_spec_files.py - agent spec files (docs/agent-spec.md) from the CLI to the store.

Each template in deploy/templates/ spawns on a real cluster (its model overridden with --model
mock) and `agentry get --json` shows every field it set, also after a hub restart and in the
SPAWNED event; flags given with --spec override the file's fields; bad files are one
line-numbered error (exit 2) and create nothing; the templates and every YAML example in the
docs validate against docs/agent-spec.schema.json and pass `agentry spec check`.
"""
import glob
import json
import os
import re
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import jsonschema  # noqa: E402  (python3-jsonschema: deploy/deps.sh --test)
import yaml  # noqa: E402  (python3-yaml)

TEMPLATES = sorted(glob.glob(os.path.join(H.AGENTRY_SRC, "deploy", "templates", "*.yaml")))
SCHEMA = os.path.join(H.AGENTRY_SRC, "docs", "agent-spec.schema.json")
DOCS = [os.path.join(H.AGENTRY_SRC, "docs", d) for d in ("agent-spec.md", "real-model.md")]

# (file text, the error line after "error: <file>:"). Each must be refused before anything is
# sent, naming its line and key.
BAD = [
    ("name: x\nmodel:\n  provider: openai\n  temperature: hot\n",
     "4: model.temperature: expected a number, got 'hot'"),
    ("name: x\nmodle: mock\n", "2: unknown key 'modle' (expected name, model, "),
    ("name: x\nmodel:\n  provider: openai\n  temprature: 1\n", "4: model: unknown key 'temprature'"),
    ("name: a\nname: b\n", "2: name: duplicate key (first at line 1)"),
    ("name: &n x\nsystem_prompt: *n\n", "1: anchors and aliases (&name, *name) are not supported"),
    ("name: x\n---\nname: y\n", "2: a spec file holds one agent"),
    ("name: x\n  bad: [\n", "2: invalid YAML: "),
    ("tools: [echo, echo]\n", "1: tools[1]: tool 'echo' is listed twice"),
    ("tools:\n  - echo\n  - name: http_request\n    settings: [a]\n",
     "4: tools[1].settings: expected a mapping of the tool's settings, got a list"),
    ("tools:\n  - {settings: {a: 1}}\n", "2: tools[0]: a tool needs a name"),
    ("limits:\n  turn_timeout: 300\n", "2: limits.turn_timeout: expected a duration like 90s"),
    ("limits:\n  turn_timeout: 25h\n", "2: limits.turn_timeout: 25h is more than the limit"),
    ("limits:\n  max_tokens: -1\n", "2: limits.max_tokens: -1 is out of range"),
    ("model: {provider: openai, api_key: sk-123}\n",
     "1: model.api_key: a key never goes in a spec"),
    ("model: {id: gpt-4o}\n", "1: model: provider is required"),
    ("model:\n  provider: openai\n  stream: maybe\n", "3: model.stream: expected true or false"),
    ("max_iterations: 1001\n", "1: max_iterations: 1001 is out of range (0..1000)"),
    ("permissions:\n  - tool: shell\n    decision: maybe\n",
     "3: permissions[0].decision: expected allow, ask or deny, got 'maybe'"),
    ("limits:\n  approval_timeout: 721h\n",
     "2: limits.approval_timeout: 721h is more than the limit of 30 days"),
    ("permissions:\n  - tool: shell\n", "2: permissions[0]: a rule needs a tool"),
    ("labels: [a, b]\n", "1: labels: expected a mapping of names to values, got a list"),
    ("resources: {cpu: lots}\n", "1: resources.cpu: expected CPU like 500m or 2"),
    ("- name: x\n", "1: a spec is a mapping of keys"),
    # Limits only the hub's rules know are named by field, without a line.
    ("model:\n  provider: openai\n  headers: {'Bad Name': v}\n",
     " spec.model_settings.headers name 'Bad Name' must be"),
    ("anti_affinity: [team]\n", " spec.anti_affinity names 'team'"),
]


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def docs_examples():
    """(where, text) of every ```yaml block in the docs that holds a spec (not a comment alone)."""
    out = []
    for path in DOCS:
        with open(path) as f:
            text = f.read()
        for i, m in enumerate(re.finditer(r"```yaml\n(.*?)```", text, re.S)):
            if yaml.safe_load(m.group(1)) is not None:
                out.append(("%s example %d" % (os.path.basename(path), i + 1), m.group(1)))
    return out


class SpecSchemaTest(unittest.TestCase):
    """No cluster: the schema, the templates, the docs' examples and `agentry spec check`."""

    @classmethod
    def setUpClass(cls):
        with open(SCHEMA) as f:
            cls.schema = json.load(f)
        jsonschema.Draft202012Validator.check_schema(cls.schema)
        cls.v = jsonschema.Draft202012Validator(cls.schema)

    def check_file(self, path):
        r = H.run_cli(["spec", "check", path])
        self.assertEqual((r.returncode, r.stderr), (0, ""), path)
        return json.loads(r.stdout)

    def test_templates_validate(self):
        self.assertEqual([os.path.basename(t) for t in TEMPLATES],
                         ["agent_0.yaml", "coder.yaml", "researcher.yaml"])
        for t in TEMPLATES:
            with self.subTest(template=os.path.basename(t)):
                self.v.validate(load_yaml(t))
                self.check_file(t)

    def test_docs_examples_validate(self):
        examples = docs_examples()
        self.assertGreaterEqual(len(examples), 5)
        with tempfile.TemporaryDirectory() as d:
            for where, text in examples:
                with self.subTest(example=where):
                    self.v.validate(yaml.safe_load(text))
                    path = os.path.join(d, "example.yaml")
                    with open(path, "w") as f:
                        f.write(text)
                    self.check_file(path)

    def test_schema_refuses_what_the_cli_refuses(self):
        bad = [{"modle": "mock"}, {"model": {"provider": "openai", "api_key": "sk"}},
               {"model": {"id": "x"}}, {"model": {"provider": "openai", "temperature": 3}},
               {"tools": [{"name": "shell", "settings": [1]}]},
               {"limits": {"turn_timeout": "300"}},
               {"permissions": [{"tool": "shell", "decision": "maybe"}]},
               {"max_iterations": 1001}, {"scheduler": "fastest"},
               {"model": {"provider": "openai", "base_url": "ftp://x"}},
               {"model": {"provider": "openai", "headers": {"Bad Name": "v"}}}]
        for spec in bad:
            with self.subTest(spec=spec):
                self.assertFalse(self.v.is_valid(spec))

    def test_spec_check_prints_the_normalized_spec(self):
        j = self.check_file(os.path.join(H.AGENTRY_SRC, "deploy", "templates", "researcher.yaml"))
        self.assertEqual(j["model"], "openai/gpt-4o-mini")
        self.assertEqual(j["limits"]["turn_timeout_ms"], 600000)
        self.assertEqual(j["tool_settings"]["http_request"]["allow_hosts"],
                         ["en.wikipedia.org", "api.github.com"])
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bad.yaml")
            with open(path, "w") as f:
                f.write(BAD[0][0])
            line = H.one_error_line(self, H.run_cli(["spec", "check", path]), rc=1)
            self.assertEqual(line, "error: %s:%s" % (path, BAD[0][1]))


class SpecFilesTest(H.ClusterTestCase):
    NODES = 1
    CAPACITY = 2
    HEARTBEAT = "10s"  # the fake node below sends none; a test is over long before 30 s

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="agentry-spec-")
        # Spawn refuses tools no connected node offers: a fake node offers every tool the
        # templates name, whatever the real node of this build offers. It offers no model an
        # agent here uses, so no turn is ever placed on it.
        tools = set()
        for t in TEMPLATES:
            tools |= {x if isinstance(x, str) else x["name"] for x in load_yaml(t)["tools"]}
        self.fake = H.FakeNode(self.c)
        self.addCleanup(self.fake.cancel)
        m = self.fake.register("fake-%s" % self._testMethodName[5:20].replace("_", "-"),
                               models=("fake-model",), tools=sorted(tools))
        self.assertEqual(m.WhichOneof("msg"), "registered")

    def cli(self, *args):
        return H.run_cli(list(args) + ["--hub", self.c.addr])

    def write(self, text, name="agent.yaml"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def spawn(self, *args):
        r = self.cli("spawn", *args)
        self.assertEqual((r.returncode, r.stderr), (0, ""), args)
        return r.stdout.strip()

    def get_json(self, aid):
        r = self.cli("get", "--json", aid)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        return json.loads(r.stdout)

    def assert_spec_from_file(self, got, y):
        """The spec `get --json` shows holds every field the YAML file set."""
        self.assertEqual(got["name"], y["name"])
        self.assertEqual(got["model"], "mock", "--model overrides the file's")
        self.assertEqual(got["system_prompt"], y["system_prompt"])
        names = [t if isinstance(t, str) else t["name"] for t in y["tools"]]
        self.assertEqual(got["tools"], names)
        settings = {t["name"]: t["settings"] for t in y["tools"] if isinstance(t, dict)}
        self.assertEqual(got.get("tool_settings", {}), settings)
        m = y["model"]
        ms = got["model_settings"]
        self.assertEqual(ms["stream"], m.get("stream", False))
        if "temperature" in m:
            self.assertAlmostEqual(ms["temperature"], m["temperature"])
        self.assertEqual(ms["max_tokens"], m.get("max_tokens", 0))
        lim = y["limits"]
        self.assertEqual(got["limits"]["max_tokens"], lim["max_tokens"])
        self.assertAlmostEqual(got["limits"]["max_cost_usd"], lim["max_cost_usd"])
        self.assertGreater(got["limits"]["turn_timeout_ms"], 0)
        want = [{"tool": p["tool"], "decision": p["decision"], "patterns": p.get("patterns", [])}
                for p in y["permissions"]]
        self.assertEqual(got["permissions"], want)
        self.assertEqual(got["labels"], {k: str(v) for k, v in y["labels"].items()})

    def test_templates_spawn_and_get_shows_their_fields(self):
        for t in TEMPLATES:
            with self.subTest(template=os.path.basename(t)):
                y = load_yaml(t)
                aid = self.spawn("--spec", t, "--model", "mock")
                a = self.get_json(aid)
                self.assert_spec_from_file(a["spec"], y)
                self.assertEqual(a["usage"]["cost_usd"], 0)
                human = self.cli("get", aid).stdout.splitlines()
                self.assertIn("token_budget:   0 of %d (0%%)" % y["limits"]["max_tokens"], human)
                self.assertIn("cost_budget:    $0.0000 of $%.4f (0%%)"
                              % y["limits"]["max_cost_usd"], human)
                self.assertIn("stream:         true", human)
                self.assertFalse([ln for ln in human if "sk-" in ln])

    def test_fields_survive_a_restart_and_are_in_the_spawned_event(self):
        t = os.path.join(H.AGENTRY_SRC, "deploy", "templates", "coder.yaml")
        aid = self.spawn("--spec", t, "--model", "mock")
        before = self.get_json(aid)["spec"]
        port = self.c.port
        self.c.stop_hub()
        self.c.start_hub(port=port)
        self.assertEqual(self.get_json(aid)["spec"], before)
        spawned = H.payload(self.c.trace(aid)[0])
        for key in ("model_settings", "tool_settings", "limits", "permissions"):
            self.assertEqual(spawned[key], before[key], key)
        self.assertTrue(spawned["tool_settings"]["shell"]["privileged"])

    def test_flags_override_the_files_fields(self):
        path = self.write("name: from-file\n"
                          "model: {provider: mock, stream: true}\n"
                          "system_prompt: file prompt\n"
                          "tools:\n  - echo\n  - {name: append, settings: {mode: x}}\n"
                          "max_iterations: 5\n"
                          "labels: {team: a, env: prod}\n"
                          "priority: 3\n")
        aid = self.spawn("--spec", path)
        s = self.get_json(aid)["spec"]
        self.assertEqual((s["name"], s["model"], s["system_prompt"], s["max_iterations"]),
                         ("from-file", "mock", "file prompt", 5))
        self.assertEqual(s["tool_settings"], {"append": {"mode": "x"}})
        aid = self.spawn("--spec", path, "--name", "from-flag", "--system", "flag prompt",
                         "--max-iterations", "7", "--tool", "echo", "--label", "team=b",
                         "--priority", "-2")
        s = self.get_json(aid)["spec"]
        self.assertEqual((s["name"], s["system_prompt"], s["max_iterations"], s["priority"]),
                         ("from-flag", "flag prompt", 7, -2))
        self.assertEqual(s["tools"], ["echo"], "--tool replaces the list")
        self.assertNotIn("tool_settings", s, "settings of a tool no longer listed are dropped")
        self.assertEqual(s["labels"], {"team": "b", "env": "prod"}, "--label merges by key")
        self.assertTrue(s["model_settings"]["stream"], "what no flag names stays the file's")

    def test_invoke_with_a_spec_file(self):
        path = self.write("name: inv\nmodel: mock\ntools: [echo]\nlimits: {max_tokens: 1000}\n")
        r = self.cli("invoke", "--json", "--spec", path, "final done")
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        j = json.loads(r.stdout)
        self.assertEqual(j["state"], "idle")
        self.assertEqual(self.get_json(j["agent_id"])["spec"]["limits"]["max_tokens"], 1000)

    def test_get_shows_why_it_yielded_and_the_budgets(self):
        path = self.write("model: mock\ntools: [echo]\nmax_iterations: 2\n"
                          "limits: {max_tokens: 1000000, turn_timeout: 90s}\n")
        aid = self.spawn("--spec", path, "loop")
        self.c.wait_state(aid, self.T.AGENT_STATE_YIELDED)
        lines = self.cli("get", aid).stdout.splitlines()
        self.assertTrue([ln for ln in lines if ln.startswith("state_reason:   max_iterations: ")],
                        lines)
        self.assertIn("turn_timeout:   90s", lines)
        self.assertTrue([ln for ln in lines if ln.startswith("token_budget:   ")
                         and ln.endswith(" of 1000000 (0%)")], lines)
        a = self.get_json(aid)
        self.assertEqual((a["state"], a["last_error"]), ("yielded", "max_iterations"))

    def test_bad_files_are_one_line_with_the_line_number(self):
        before = len(self.c.list_all())
        for i, (text, want) in enumerate(BAD):
            path = self.write(text, "bad%d.yaml" % i)
            for cmd in (["spawn", "--spec", path], ["invoke", "--spec", path, "final x"]):
                with self.subTest(file=text, cmd=cmd[0]):
                    line = H.one_error_line(self, self.cli(*cmd), rc=2)
                    self.assertTrue(line.startswith("error: %s:%s" % (path, want)),
                                    "%r does not start with %r" % (line, want))
        missing = os.path.join(self.dir, "nope.yaml")
        line = H.one_error_line(self, self.cli("spawn", "--spec", missing), rc=2)
        self.assertIn("cannot read spec file '%s'" % missing, line)
        self.assertEqual(len(self.c.list_all()), before, "nothing was created")


if __name__ == "__main__":
    H.main()
