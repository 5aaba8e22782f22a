"""tests/docs/test_doc_blocks.py - the files and snippets the pages a user follows hand out.

For docs/getting-started.md and docs/cookbook.md: every spec file the page asks to save (a yaml
block starting with `# NAME.yaml` that a command uses with --spec or `spec check`) validates
against docs/agent-spec.schema.json and passes `agentry spec check` (with the page's other
files beside it, as the reader has them), and every other yaml block that holds spec keys (a
fragment to add to a spec) validates against the schema. docs/production.md's Prometheus alert
rules pass `promtool check rules`, and its other yaml blocks parse. No hub is needed.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402
import docpage  # noqa: E402
import jsonschema  # noqa: E402  (python3-jsonschema: deploy/deps.sh --test)
import yaml  # noqa: E402  (python3-yaml)

PAGES = ["getting-started.md", "cookbook.md"]
SCHEMA = os.path.join(H.AGENTRY_SRC, "docs", "agent-spec.schema.json")


def spec_names(path):
    """Files the page's commands use as specs."""
    names = set()
    for b in docpage.blocks(path):
        if b.lang == "sh":
            names |= set(re.findall(r"(?:--spec|spec check) ([A-Za-z0-9._-]+\.ya?ml)", b.body))
    return names


class DocBlocksTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(SCHEMA) as f:
            cls.schema = json.load(f)
        cls.v = jsonschema.Draft202012Validator(cls.schema)

    def test_spec_files_validate_and_pass_spec_check(self):
        for page in PAGES:
            path = docpage.doc(page)
            files = docpage.named_files(path)
            specs = spec_names(path)
            self.assertTrue(specs, page)
            d = tempfile.mkdtemp(prefix="agentry-docs-specs-")
            self.addCleanup(shutil.rmtree, d, True)
            for name, text in files.items():
                with open(os.path.join(d, name), "w") as f:
                    f.write(text)
            for name in sorted(specs):
                with self.subTest(page=page, spec=name):
                    self.assertIn(name, files, "%s uses %s but does not show it" % (page, name))
                    self.v.validate(yaml.safe_load(files[name]))
                    r = H.run_cli(["spec", "check", name], cwd=d)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    json.loads(r.stdout)

    def test_spec_fragments_validate(self):
        keys = set(self.schema["properties"])
        seen = 0
        for page in PAGES:
            for b in docpage.blocks(docpage.doc(page)):
                if b.lang != "yaml" or b.file_name:
                    continue
                doc = yaml.safe_load(b.body)
                if isinstance(doc, dict) and set(doc) <= keys:
                    with self.subTest(page=page, line=b.line):
                        self.v.validate(doc)
                        seen += 1
        self.assertGreaterEqual(seen, 1)

    def test_production_alert_rules(self):
        rules = None
        for b in docpage.blocks(docpage.doc("production.md")):
            if b.lang == "yaml":
                doc = yaml.safe_load(b.body)  # every yaml block parses
                if isinstance(doc, dict) and "groups" in doc:
                    rules = b.body
        self.assertIsNotNone(rules, "production.md has no alert rules")
        promtool = shutil.which("promtool")
        if not promtool:
            self.skipTest("promtool is not installed (Debian: prometheus)")
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write(rules)
            f.flush()
            r = subprocess.run([promtool, "check", "rules", f.name], capture_output=True,
                               text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    H.main()
