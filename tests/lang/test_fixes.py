"""Machine-readable fixes on diagnostics: applying the fix makes the diagnostic go away.

Each case is a policy with one mistake whose diagnostic suggests a fix in words; the fix is
applied to the text as an editor would, and the fixed text must compile without that code.
"""

from __future__ import annotations

import pytest

from gavel.lang.diagnostics import Fix, render
from gavel.lang.pipeline import compile_sources
from gavel.lang.source import Span

HEAD = "package p\n\n"


def apply(text: str, fix: Fix) -> str:
    lines = text.splitlines(keepends=True)

    def offset(line: int, column: int) -> int:
        return sum(len(x) for x in lines[: line - 1]) + column - 1

    start, end = offset(fix.span.line, fix.span.column), offset(fix.span.end_line, fix.span.end_column)
    return text[:start] + fix.replacement + text[end:]


CASES = {
    "unknown path": ('rule r\n  deny "p.r"\n  when action.amout > 5\n', "E101", "action.amount > 5"),
    "unknown fact path": ('rule r\n  deny "p.r"\n  when agent.spend.todya > 5\n', "E101", "agent.spend.today"),
    "unknown name": ('rule r\n  deny "p.r"\n  when actoin.amount > 5\n', "E101", "action.amount"),
    "unknown name that is a let": ('let limit = 5\n\nrule r\n  deny "p.r"\n  when action.amount > limt\n', "E101",
                                   "> limit"),
    "unknown risk field": ('rule r\n  deny "p.r"\n  when risk.scor > 5\n', "E101", "risk.score"),
    "unknown function": ('rule r\n  deny "p.r"\n  when lenght(action.tool) > 5\n', "E106", "len(action.tool)"),
    "unknown route field": ('rule r\n  require_approval "p.r"\n  when action.amount > 5\n'
                            '  route { rol: "x" }\n', "E206", 'role: "x"'),
    "a value never seen": ('rule r\n  deny "p.r"\n  when agent.status == "actve"\n', "W306", '"active"'),
    "now has no member": ('rule r\n  deny "p.r"\n  when now.hour > 5\n', "E102", "hour(now) > 5"),
    "a route is missing": ('rule r\n  require_approval "p.r"\n  when action.amount > 5\n', "E204", "route {"),
    "unused let": ('let spare = 1\n\nrule r\n  deny "p.r"\n  when action.amount > 5\n', "W301", "rule r"),
    "misspelt soft keyword": ('test "t" {\n  expcet allow "p.r"\n}\n', "E002", "expect allow"),
    "misspelt test clause": ('test "t" {\n  inptu { action: { type: "x" } }\n  expect deny "p.r"\n}\n', "E002",
                             "input {"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_applying_the_fix_clears_the_diagnostic(name: str) -> None:
    body, code, fixed_fragment = CASES[name]
    text = HEAD + body
    comp = compile_sources({"p.rules": text})
    found = [d for d in comp.diagnostics if d.code == code and d.fixes]
    assert found, [d.headline() for d in comp.diagnostics]
    (fix,) = found[0].fixes
    fixed = apply(text, fix)
    assert fixed_fragment in fixed
    again = compile_sources({"p.rules": fixed})
    assert not [d for d in again.diagnostics if d.code == code], render(again.diagnostics[0])
    assert not again.errors, [d.headline() for d in again.errors]


def test_a_path_written_with_spaces_gets_no_fix_rather_than_a_wrong_one() -> None:
    comp = compile_sources({"p.rules": HEAD + 'rule r\n  deny "p.r"\n  when (action).amout > 5\n'})
    (d,) = comp.errors
    assert d.code == "E101" and "did you mean" in d.help and d.fixes == ()


def test_no_fix_without_a_suggestion() -> None:
    comp = compile_sources({"p.rules": HEAD + 'rule r\n  deny "p.r"\n  when action.zzzzzz > 5\n'})
    assert comp.errors[0].fixes == ()


def test_fixes_do_not_change_what_is_rendered() -> None:
    comp = compile_sources({"p.rules": HEAD + 'rule r\n  deny "p.r"\n  when action.amout > 5\n'})
    (d,) = comp.errors
    assert d.fixes and d.fixes[0].span == Span("p.rules", 5, 15, 5, 20)
    assert "change to" not in render(d, comp.sources)
    assert "fix" not in d.to_dict()
