"""gavel.authoring, the pure core under the language server and the REPL: answers on any text,
and the symbol, type and completion facts they are built on."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gavel.authoring.analysis import analyze_bundle
from gavel.authoring.builtin_docs import DESCRIPTIONS, builtin_doc
from gavel.authoring.completion import complete
from gavel.authoring.hover import hover
from gavel.authoring.navigation import RenameError, definitions, references, rename, rename_target
from gavel.authoring.paths import lookup
from gavel.authoring.text import LineIndex
from gavel.lang.data import DataFile
from gavel.lang.functions import SIGNATURES

RULES = Path(__file__).resolve().parents[2] / "rules"
REFUNDS = (RULES / "refunds.rules").read_text(encoding="utf-8")
TRICKY = ['"', "{", "}", ".", "(", ")", "\n", "#", "any x in ", ":", "\\", "😀", "not in", "??", "let ", "rule "]


@st.composite
def edited(draw) -> str:
    """The refunds policy with a few edits of the kind typing makes: cuts and insertions."""
    text = REFUNDS
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:at] + text[at + draw(st.integers(0, 40)):]
        else:
            text = text[:at] + draw(st.sampled_from(TRICKY)) + text[at:]
    return text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=edited(), where=st.floats(0, 1))
def test_every_question_on_any_text_gets_an_answer(text: str, where: float) -> None:
    analysis = analyze_bundle({"refunds.rules": text})
    lines = LineIndex(text)
    line, column = lines.position(int(len(text) * where))
    hover(analysis, "refunds.rules", line, column)
    complete(analysis, "refunds.rules", text, line, column)
    complete(None, "refunds.rules", text, line, column)
    definitions(analysis, "refunds.rules", line, column)
    references(analysis, "refunds.rules", line, column)
    with suppress(RenameError):  # refusing a rename is an answer too
        rename(analysis, "refunds.rules", line, column, "renamed_name")


def test_every_builtin_has_a_description() -> None:
    assert set(SIGNATURES) <= set(DESCRIPTIONS)
    assert builtin_doc("len").startswith("```rules\nlen(")
    assert builtin_doc("no_such_function") is None


def test_a_let_is_found_across_the_files_of_its_package() -> None:
    texts = {
        "a.rules": "package p\n\nlet limit = 5\n",
        "b.rules": 'package p\n\nrule r\n  deny "p.r"\n  when action.amount > limit\n',
        "c.rules": 'package q\n\nlet limit = 9\n\nrule r\n  deny "q.r"\n  when action.amount > limit\n',
    }
    analysis = analyze_bundle(texts)
    (target,) = definitions(analysis, "b.rules", 5, 25)
    assert (target.file, target.line, target.column) == ("a.rules", 3, 5)
    refs = references(analysis, "a.rules", 3, 6)
    assert [(s.file, s.line) for s in refs] == [("a.rules", 3), ("b.rules", 5)]  # not package q's own `limit`
    edits = rename(analysis, "a.rules", 3, 6, "ceiling")
    assert sorted(edits) == ["a.rules", "b.rules"]


def test_a_variable_shadows_nothing_and_is_its_own_symbol() -> None:
    text = 'package p\n\nlet tags = ["a"]\n\nrule r\n  deny "p.r"\n  when any t in tags: t == "a"\n'
    analysis = analyze_bundle({"p.rules": text})
    use = text.split("\n")[6].index('t == "a"') + 1
    (decl,) = definitions(analysis, "p.rules", 7, use)
    assert (decl.line, decl.column) == (7, text.split("\n")[6].index("t in") + 1)
    assert rename_target(analysis, "p.rules", 7, use).symbol.kind == "var"
    try:
        rename(analysis, "p.rules", 3, 5, "t")
    except RenameError as exc:
        assert "would hide the renamed let" in str(exc)
    else:
        raise AssertionError("renaming the let to the variable's name must be refused")


def test_data_paths_know_the_files_and_their_keys() -> None:
    analysis = analyze_bundle({"v.rules": "package v\n"},
                              [DataFile("data/eu/banks.json", "data/eu/banks.json", '{"swift": ["X"], "n": 2}')])
    info = lookup(("data", "eu"), package="v", let_types={}, variables={}, data=analysis.data)
    assert list(info.members) == ["banks"]
    info = lookup(("data", "eu", "banks"), package="v", let_types={}, variables={}, data=analysis.data)
    assert list(info.members) == ["n", "swift"] and "data/eu/banks.json" in info.detail
    assert lookup(("data", "eu", "banks", "swift"), package="v", let_types={}, variables={},
                  data=analysis.data).type.kind == "dynamic"


def test_hover_on_a_fact_says_it_comes_from_the_server() -> None:
    text = 'package p\n\nrule r\n  deny "p.r"\n  when agent.spend.today > 1\n'
    analysis = analyze_bundle({"p.rules": text})
    found = hover(analysis, "p.rules", 5, text.split("\n")[4].index("today") + 2)
    assert "agent.spend.today: number" in found.markdown and "fact (from the server)" in found.markdown
