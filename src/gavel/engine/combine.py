"""The combining rule (LANGUAGE.md §Combining), as a ranking and a truth table.

Most restrictive effect wins (deny > require_approval > allow); then the most specific match;
then higher priority; then package name, then rule name, in byte order. No match and no
default anywhere is a deny with `policy.no_match`; a rule that failed to evaluate is a deny
with `policy.evaluation_error`. Gavel fails closed.
"""

from __future__ import annotations

from gavel.engine.decision import Match

RESTRICTIVENESS = {"deny": 3, "require_approval": 2, "allow": 1}
NO_MATCH = "policy.no_match"
EVALUATION_ERROR = "policy.evaluation_error"


def rank_key(m: Match) -> tuple:
    return (-RESTRICTIVENESS[m.effect], -m.specificity, -m.priority,
            m.package.encode(), m.rule.encode())


def rank(matches: list[Match]) -> list[Match]:
    return sorted(matches, key=rank_key)


def why_winner(ranked: list[Match]) -> str:
    """Why the first of the ranked matches beat the second."""
    if len(ranked) == 1:
        return "the only matching rule"
    w, r = ranked[0], ranked[1]
    if w.effect != r.effect:
        return f"{w.effect} beats {r.effect}: the most restrictive effect wins"
    if w.specificity != r.specificity:
        return (f"most specific: it reads {w.specificity} request path{'s' if w.specificity != 1 else ''}, "
                f"{r.rule} reads {r.specificity}")
    if w.priority != r.priority:
        return f"higher priority: {w.priority} against {r.priority} for {r.rule}"
    return f"equal specificity and priority; `{w.rule}` sorts before `{r.rule}`"
