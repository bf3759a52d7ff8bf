"""Golden diagnostics: each `diagnostics/NAME.rules` has the exact rendered output in `NAME.expected`.

These cases are the language's specification of what authors see. Regenerate after an
intended change with `GAVEL_UPDATE_GOLDENS=1 pytest tests/lang/test_diagnostics_golden.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gavel.lang.diagnostics import render_all
from gavel.lang.pipeline import compile_sources
from tests.goldens import check_golden

HERE = Path(__file__).parent / "diagnostics"
CASES = sorted(p.stem for p in HERE.glob("*.rules"))


def rendered(name: str) -> str:
    path = f"{name}.rules"
    comp = compile_sources({path: (HERE / path).read_text(encoding="utf-8")})
    return render_all(comp.diagnostics, comp.sources) + "\n"


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str) -> None:
    check_golden(HERE / f"{name}.expected", rendered(name))


@pytest.mark.parametrize("name", CASES)
def test_every_case_reports_something_with_a_location(name: str) -> None:
    comp = compile_sources({f"{name}.rules": (HERE / f"{name}.rules").read_text(encoding="utf-8")})
    assert comp.diagnostics, f"{name} should produce a diagnostic"
    for d in comp.diagnostics:
        assert d.span.file == f"{name}.rules" and d.span.line >= 1 and d.span.column >= 1
        assert d.code[0] in "EW" and d.code[1:].isdigit()
