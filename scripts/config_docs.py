"""docs/configuration.md's tables of keys, written from config.example.toml, so the two never drift.

    .venv/bin/python scripts/config_docs.py          # rewrite the tables in docs/configuration.md
    .venv/bin/python scripts/config_docs.py --check  # exit 1 when they are not what the example says

config.example.toml is the one place a key and its default are written: each key's comment (the
comment lines just above it, and one after it on its line) becomes its description, a key set in
the file is shown with its value as the default, and a key shown only commented out (`# token =
"…"`) is one that is unset by default, its value an example. tests/test_docs.py runs the check.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config.example.toml"
DOC = ROOT / "docs" / "configuration.md"
BEGIN = "<!-- keys: written by scripts/config_docs.py from config.example.toml; do not edit by hand -->"
END = "<!-- end of keys -->"

_SECTION = re.compile(r"^\[(\w+)\]\s*$")
# A key set in the file, or shown commented out; the value runs to an inline comment, if any.
_KEY = re.compile(
    r"^(?P<unset>#\s*)?(?P<key>\w+)\s*=\s*"
    r"(?P<value>(?:\"[^\"]*\"|\[[^\]]*\]|[^#\s]+))\s*(?:#\s*(?P<note>.*))?$"
)


@dataclass(frozen=True)
class Key:
    section: str  # "" for the top level
    name: str
    value: str  # as written in the file
    unset: bool  # shown commented out: no value unless one is given
    description: str

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}" if self.section else self.name


def read_keys(text: str) -> list[Key]:
    """Every key of the example, in its order, with its description."""
    keys: list[Key] = []
    section = ""
    comment: list[str] = []
    lines = text.splitlines()
    start = next((n for n, line in enumerate(lines) if not line.strip()), 0)  # after the file's header
    lead: Key | None = None  # the described key a run of keys without comments of their own follows
    for line in lines[start:]:
        stripped = line.strip()
        if not stripped:
            comment, lead = [], None  # a comment standing apart from any key describes none
        elif match := _SECTION.match(stripped):
            section, comment, lead = match.group(1), [], None
        elif match := _KEY.match(stripped):
            note = match.group("note")
            description = " ".join([*comment, *([note] if note else [])])
            if not description and lead is not None:  # `webhook_port` under `webhook_listen`'s comment
                description = f"Goes with `{lead.dotted}`, above."
            value = match.group("value")
            key = Key(section, match.group("key"), value, bool(match.group("unset")), description)
            keys.append(key)
            if comment:
                lead = key
            comment = []
        elif stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
        else:
            raise ValueError(f"config.example.toml: a line this script cannot read: {line!r}")
    return keys


def render(keys: list[Key]) -> str:
    """The tables, one per section, top-level keys first."""
    out = [BEGIN, ""]
    sections = list(dict.fromkeys(key.section for key in keys))
    for section in sections:
        out.append(f"### {'[' + section + ']' if section else 'Top level'}")
        out.append("")
        out.append("| key | default | what it does |")
        out.append("|---|---|---|")
        for key in (k for k in keys if k.section == section):
            default = f"unset (e.g. `{key.value}`)" if key.unset else f"`{key.value}`"
            description = key.description.replace("|", "\\|")
            out.append(f"| `{key.dotted}` | {default} | {description} |")
        out.append("")
    out.append(END)
    return "\n".join(out)


def current_doc(doc: str, keys: list[Key]) -> str:
    """The doc with its tables as the example has them now."""
    if BEGIN not in doc or END not in doc:
        raise ValueError(f"{DOC} has no {BEGIN!r} … {END!r} block to write the keys into")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + render(keys) + tail


def main(argv: list[str]) -> int:
    keys = read_keys(EXAMPLE.read_text(encoding="utf-8"))
    doc = DOC.read_text(encoding="utf-8")
    updated = current_doc(doc, keys)
    if "--check" in argv:
        if updated != doc:
            print(f"{DOC.relative_to(ROOT)} is not what config.example.toml says: run scripts/config_docs.py")
            return 1
        return 0
    if updated != doc:
        DOC.write_text(updated, encoding="utf-8")
        print(f"rewrote the keys in {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
