"""Random text never crashes the compiler: every failure is a diagnostic with a location."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gavel.lang.pipeline import compile_sources

TOKENS = [
    "package", "p", "let", "x", "=", "scope", "rule", "r", "allow", "deny", "require_approval",
    "when", "unless", "route", "with", "default", "risk", "test", "input", "expect", "facts",
    "now", "{", "}", "(", ")", "[", "]", ",", ":", ".", "action.amount", "action.type", "agent.id",
    "context.x", "risk.score", "==", "!=", "<", "<=", ">", ">=", "in", "not in", "not", "and", "or",
    "+", "-", "*", "/", "any", "all", "1", "0.5", "-3", "24h", '"s"', '"a.b"', "true", "null",
    "\n", "  ", "# c\n", "len", "matches", '"(a"', "priority", "message", "role", '"\\q"', "'x'",
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_token_soup_only_yields_diagnostics(tokens: list[str]) -> None:
    text = "package p\n" + " ".join(tokens)
    comp = compile_sources({"soup.rules": text})
    for d in comp.diagnostics:
        assert d.span.line >= 1 and d.message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_only_yields_diagnostics(text: str) -> None:
    comp = compile_sources({"any.rules": text})
    assert comp.ok or comp.errors


def test_deep_nesting_is_a_diagnostic_not_a_recursion_error() -> None:
    text = "package p\nrule r allow when " + "(" * 500 + "true" + ")" * 500
    comp = compile_sources({"deep.rules": text})
    assert [d.code for d in comp.errors] == ["E005"]


def test_long_operator_chains_are_a_diagnostic_not_a_crash() -> None:
    for text in (
        "package p\nrule r allow when " + "not " * 3000 + "true",
        "package p\nrule r allow when action.amount > " + " + ".join(["1"] * 3000),
    ):
        comp = compile_sources({"chain.rules": text})
        assert [d.code for d in comp.errors] == ["E005"]


def test_moderate_chains_still_compile() -> None:
    text = "package p\nrule r allow when action.amount > " + " + ".join(["1"] * 50)
    assert compile_sources({"ok.rules": text}).ok
