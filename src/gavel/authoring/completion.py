"""Completion at a cursor, from the text before it (which is usually half-typed and does not
parse) and the last analysis of the bundle.

- after `path.`: the members of the path (schema fields, facts, `risk.*`, data file names and
  the keys of their JSON values, members of `dynamic` data are unknown);
- inside the string after an effect (`deny "…`, `expect allow "…`): the bundle's reason codes
  and their families (`refund.`);
- at a key inside a test's `input { … }` or `facts { … }`: the schema's fields there; inside
  `route { … }`: the route fields;
- anywhere else: the package's lets, bound variables, the roots, the built-ins and keywords.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gavel.authoring.analysis import Analysis
from gavel.authoring.builtin_docs import DESCRIPTIONS
from gavel.authoring.paths import ROOT_DOCS, lookup
from gavel.authoring.symbols import EFFECTS
from gavel.authoring.text import LineIndex, Token, tokens
from gavel.lang.check import ROUTE_KEYS
from gavel.lang.functions import SIGNATURES
from gavel.lang.types import FACT_SCHEMA, REQUEST_SCHEMA, ROOTS, Type

KEYWORDS = ("package", "let", "scope", "default", "risk", "rule", "test", "when", "unless", "route", "with",
            "allow", "deny", "require_approval", "and", "or", "not", "in", "any", "all", "true", "false", "null",
            "priority", "message", "input", "facts", "expect", "role", "now")
_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][A-Za-z0-9_.]*)", re.MULTILINE)
_LET = re.compile(r"^\s*let\s+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)
_REASON = re.compile(r'\b(?:allow|deny|require_approval)\s+"([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+)"')
_BOUND = re.compile(r"\b(?:any|all)\s+([A-Za-z_][A-Za-z0-9_]*)\s+in\b")


@dataclass(frozen=True)
class Candidate:
    label: str
    kind: str  # field let variable function keyword reason family root
    detail: str = ""
    documentation: str = ""


@dataclass(frozen=True)
class Completions:
    line: int
    start_column: int  # what is typed from here to the cursor is replaced
    items: tuple[Candidate, ...]


def complete(analysis: Analysis | None, file: str, text: str, line: int, column: int) -> Completions:
    lines = LineIndex(text)
    offset = lines.offset(line, column)
    toks = list(tokens(text, 0, offset, comments=True))
    last = toks[-1] if toks else None
    if last is not None and last.end == offset and last.kind == "comment":
        return Completions(line, column, ())
    if last is not None and last.end == offset and last.kind == "string" and not last.closed:
        return _in_string(analysis, toks, lines, line, text)
    toks = [t for t in toks if t.kind != "comment"]
    word = toks[-1] if toks and toks[-1].kind == "name" and toks[-1].end == offset else None
    before = toks[:-1] if word is not None else toks
    start = lines.position(word.start)[1] if word is not None else column
    package = (analysis.package_of(file) if analysis is not None else None) or _package_in(text)

    chain = _chain_before(before, word.start if word is not None else offset)
    if chain is not None:
        return Completions(line, start, tuple(_members(analysis, chain, package, text)))
    keyed = _key_context(before)
    if keyed is not None:
        return Completions(line, start, tuple(keyed))
    return Completions(line, start, tuple(_names(analysis, package, text, lines, line)))


def _in_string(analysis: Analysis | None, toks: list[Token], lines: LineIndex, line: int, text: str) -> Completions:
    string = toks[-1]
    code_start = lines.position(string.start + 1)[1]
    previous = next((t for t in reversed(toks[:-1]) if t.kind not in ("comment", "newline")), None)
    if previous is None or previous.kind != "name" or previous.text not in EFFECTS:
        return Completions(line, code_start, ())
    # This file's own codes from its text too: while it is half-typed, the analysis lacks it.
    codes = sorted({*(analysis.index.reason_codes() if analysis else ()), *_REASON.findall(text)})
    families = sorted({c.split(".")[0] + "." for c in codes})
    items = [Candidate(f, "family", "reason-code family") for f in families]
    items += [Candidate(c, "reason", "reason code") for c in codes]
    return Completions(line, code_start, tuple(items))


def _chain_before(toks: list[Token], at: int) -> tuple[str, ...] | None:
    """`a.b.` right before `at`: ("a", "b"); None when no `.` comes right before."""
    if not toks or toks[-1].text != "." or toks[-1].end != at:
        return None
    names: list[str] = []
    i = len(toks) - 1
    while i >= 1 and toks[i].text == "." and toks[i - 1].kind == "name" and toks[i - 1].end == toks[i].start:
        names.append(toks[i - 1].text)
        i -= 2
        if not (i >= 0 and toks[i].text == "." and toks[i].end == toks[i + 1].start):
            break
    return tuple(reversed(names)) if names else None


def _members(analysis: Analysis | None, chain: tuple[str, ...], package: str | None, text: str) -> list[Candidate]:
    variables = {v: _dynamic() for v in _BOUND.findall(text)}
    info = lookup(chain, package=package, let_types=analysis.let_types if analysis else {},
                  variables=variables, data=analysis.data if analysis else None)
    if info is None:
        return []
    kind = "field" if info.origin != "data" else "data"
    return [Candidate(name, kind, str(t)) for name, t in info.members.items()]


def _dynamic() -> Type:
    return Type("dynamic")


def _key_context(toks: list[Token]) -> list[Candidate] | None:
    """Inside `route { … }`, `input { … }` or `facts { … }`, at the start of an entry: the keys
    allowed there. None elsewhere."""
    stack: list[str | None] = []
    for i, tok in enumerate(toks):
        if tok.text == "{":
            prev = toks[i - 1] if i else None
            label = None
            if prev is not None and prev.kind == "name" and prev.text in ("input", "facts", "route"):
                label = prev.text
            elif prev is not None and prev.text == ":" and i >= 2 and toks[i - 2].kind in ("name", "string"):
                label = "." + toks[i - 2].text.strip('"')
            stack.append(label)
        elif tok.text == "}" and stack:
            stack.pop()
    if not stack or (toks and toks[-1].text not in ("{", ",") and toks[-1].kind != "newline"):
        return None
    if stack[-1] == "route":
        return [Candidate(k, "field", "route field") for k in ROUTE_KEYS]
    path: list[str] = []
    for label in reversed(stack):
        if label in ("input", "facts"):
            node: object = REQUEST_SCHEMA if label == "input" else FACT_SCHEMA
            for key in reversed(path):
                node = node.get(key) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                return []
            return [Candidate(k, "field", str(v) if isinstance(v, Type) else "object") for k, v in sorted(node.items())]
        if label is None or not label.startswith("."):
            return None
        path.append(label[1:])
    return None


def _names(analysis: Analysis | None, package: str | None, text: str, lines: LineIndex,
           line: int) -> list[Candidate]:
    items: list[Candidate] = []
    seen: set[str] = set()

    def add(c: Candidate) -> None:
        if c.label not in seen:
            seen.add(c.label)
            items.append(c)

    line_text = lines.text[lines.offset(line, 1):lines.offset(line + 1, 1)] if line else ""
    for var in _BOUND.findall(line_text):
        add(Candidate(var, "variable", "quantifier variable"))
    if analysis is not None and package is not None:
        for name, symbol in sorted(analysis.index.lets.get(package, {}).items()):
            t = analysis.let_types.get((package, name))
            add(Candidate(name, "let", f"let: {t}" if t else "let", f"declared at {symbol.decl_span}"))
    for name in _LET.findall(text):
        add(Candidate(name, "let", "let"))
    for root in ROOTS:
        add(Candidate(root, "root", "root", ROOT_DOCS.get(root, "")))
    for name, sig in sorted(SIGNATURES.items()):
        add(Candidate(name, "function", sig.usage, DESCRIPTIONS.get(name, "")))
    for word in KEYWORDS:
        add(Candidate(word, "keyword"))
    return items


def _package_in(text: str) -> str | None:
    m = _PACKAGE.search(text)
    return m.group(1) if m else None
