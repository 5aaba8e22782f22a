"""tests/docs/docpage.py - reads a page of docs/ as the tests in tests/docs/ use it.

A page is a list of fenced blocks in order. What a block is for is said by the block itself or by
an HTML comment on the line before it (invisible once rendered):
- ```yaml whose first line is `# NAME.yaml`: a file the page asks the reader to save as NAME.yaml;
- ```sh: commands typed in the reader's (second) terminal, one per line;
- `<!-- docs-test: terminal -->` before a ```sh block: a long-running first terminal (`agentry
  dev`); a later one means "Ctrl-C the first terminal, then run this there";
- `<!-- docs-test: skip (why) -->` before a block: not run (it installs packages, needs a real
  key, ...);
- anything else (```console output, ```promql, ...) is shown, not run.
"""
import os
import re

BLOCK = re.compile(r"(?:^<!-- docs-test: (?P<tag>[a-z-]+)[^>]*-->\n)?^(?P<ind>[ ]*)```(?P<lang>[a-z]*)\n"
                   r"(?P<body>.*?)^(?P=ind)```$", re.S | re.M)
NAMED = re.compile(r"^# ([A-Za-z0-9._-]+\.ya?ml)\s*$")


class Block:
    def __init__(self, tag, lang, body, line):
        self.tag, self.lang, self.body, self.line = tag or "", lang, body, line

    @property
    def file_name(self):
        """NAME when this is a yaml block that starts with '# NAME.yaml', else None."""
        m = NAMED.match(self.body.split("\n", 1)[0]) if self.lang == "yaml" else None
        return m.group(1) if m else None


def blocks(path):
    with open(path) as f:
        text = f.read()
    out = []
    for m in BLOCK.finditer(text):
        ind = len(m.group("ind"))  # a block inside a list item: its lines are indented
        body = "".join(x[ind:] for x in m.group("body").splitlines(True))
        out.append(Block(m.group("tag"), m.group("lang"), body, text.count("\n", 0, m.start()) + 1))
    return out


def named_files(path):
    """{NAME: text} of the page's files (yaml blocks starting with '# NAME.yaml')."""
    return {b.file_name: b.body for b in blocks(path) if b.file_name}


def doc(name):
    return os.path.join(os.environ.get("AGENTRY_SRC") or
                        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
                            __file__)))), "docs", name)
