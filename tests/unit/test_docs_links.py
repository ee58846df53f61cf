"""Every relative link in the README, CONTRIBUTING.md and docs/ leads somewhere.

The docs name packages, folders and each other by path; code moves (issue 9 moved every
module) and a renamed doc leaves dangling links that nobody clicks until a newcomer does.
Anchors are checked against the target's headings the way GitHub turns a heading into an id.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")])

# [text](target) outside code spans, and the targets of mermaid `click node "target"` lines.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CLICK = re.compile(r'^\s*click\s+\w+\s+"([^"]+)"', re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {github_anchor(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", text, re.MULTILINE)}


def links(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    found = CLICK.findall(text)
    prose = CODE_SPAN.sub("", FENCE.sub("", text))
    found += LINK.findall(prose)
    return [target for target in found if not re.match(r"[a-z]+:", target)]  # http:, mailto:


# A path written in code font from the repository root, naming a file (with an extension) or
# a folder (trailing slash): `tests/unit/test_throttle.py`, `lambdas/cali/search/opensearch/`.
ROOTED = ("lambdas/", "tests/", "cali_local/", "cali_cli/", "cali_testing/", "stacks/", "grafana/", "bench/")
CODE_PATH = re.compile(r"`((?:" + "|".join(map(re.escape, ROOTED)) + r")[\w./-]*(?:\.\w+|/))`")


def named_paths(path: Path) -> list[str]:
    return [p for p in CODE_PATH.findall(path.read_text(encoding="utf-8")) if "*" not in p]


def test_the_docs_exist() -> None:
    assert ROOT / "README.md" in DOCS and ROOT / "CONTRIBUTING.md" in DOCS and len(DOCS) > 5


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in links(doc):
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists():
            broken.append(f"{target}: no such file or folder")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{doc.relative_to(ROOT)}: {broken}"


def test_anchor_rule_matches_github() -> None:
    assert github_anchor("Metrics (namespace `CALI`, dimension `service=log_consumer`)") == (
        "metrics-namespace-cali-dimension-servicelog_consumer"
    )
    assert github_anchor("The Kinesis read limit: what CALI chose and why") == (
        "the-kinesis-read-limit-what-cali-chose-and-why"
    )


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_paths_named_in_code_font_exist(doc: Path) -> None:
    missing = [p for p in named_paths(doc) if not (ROOT / p).exists()]
    assert not missing, f"{doc.relative_to(ROOT)} names paths that do not exist: {missing}"
