"""docs/security.md names the tests that cover each threat: every one it names must exist, so the
table cannot drift from the suite (a renamed or deleted test fails here)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`|`::(\w+)`")


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_test_the_threat_model_names_exists() -> None:
    text = (ROOT / "docs" / "security.md").read_text()
    named, missing = 0, []
    for line in text.splitlines():
        current = None  # `::name` continues the last file named on the same line
        for match in REFERENCE.finditer(line):
            path, name, continued = match.groups()
            if path:
                current = ROOT / path
                if not current.exists():
                    missing.append(path)
                    current = None
                    continue
            name = name or continued
            if name:
                named += 1
                if current is None or name not in defined_tests(current):
                    missing.append(f"{current.relative_to(ROOT) if current else '?'}::{name}")
    assert named > 50
    assert missing == [], missing
