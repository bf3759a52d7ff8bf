"""The REPL's state and what each line does, apart from the console that reads the lines.

An expression is evaluated in the current package (so it sees that package's lets) against
the current request, facts and `now`, by compiling the bundle with one more file:
`package P` and `let <hidden> = EXPR`. The checker types it and reports its mistakes like any
other rule text (the columns are the line's own); the engine's compiled closures compute it,
with the risk score and tier of the current request.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from gavel.authoring.analysis import Analysis, analyze_bundle
from gavel.engine.activation import Activation
from gavel.engine.engine import CompiledEngine, PolicyError
from gavel.lang.check import parse_time
from gavel.lang.data import DataFile, is_data_name
from gavel.lang.diagnostics import Diagnostic, render
from gavel.lang.fmt import format_duration, format_string
from gavel.lang.source import Source, Span
from gavel.lang.values import EvalError, canonical_decimal
from gavel.sources import SourceError, read_bundle_files

INPUT = "<input>"  # how the typed line is named in diagnostics
HIDDEN_FILE = "<repl>.rules"
HIDDEN_LET = "__repl_value"
DEFAULT_PACKAGE = "repl"

HELP = """\
EXPR                       evaluate an expression in the current package (e.g. action.amount > small)
:decide [JSON|@FILE]       decide the request (the given one becomes the current request)
:explain [JSON|@FILE]      decide and print the whole explain trace
:request [JSON|@FILE|clear]  show or set the request that paths read (alias :input)
:facts [JSON|@FILE|clear]  show or set the facts
:now [ISO|clock]           show or set the decision time (clock: the time of each evaluation)
:package [NAME]            show the packages, or evaluate in NAME (its lets become visible)
:load [PATH]               load a bundle (a rules directory or file), or reload the current one
:help                      this text
:quit                      leave (end of input does too)"""

COMMANDS = (":decide", ":explain", ":request", ":input", ":facts", ":now", ":package", ":load", ":help", ":quit",
            ":exit")


class ReplError(Exception):
    """A line the REPL cannot act on; the message is printed and the session goes on."""


@dataclass
class Reply:
    text: str
    quit: bool = False
    ok: bool = True


@dataclass
class Session:
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    paths: list[str] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    engine: CompiledEngine | None = None
    analysis: Analysis | None = None
    package: str = DEFAULT_PACKAGE
    request: dict = field(default_factory=dict)
    facts: dict | None = None
    now: datetime | None = None

    # ------------------------------------------------------------ lines

    def handle(self, line: str) -> Reply:
        line = line.strip()
        if not line or line.startswith("#"):
            return Reply("")
        try:
            if line.startswith(":"):
                return self._command(line)
            return Reply(self.evaluate(line))
        except ReplError as exc:
            return Reply(f"error: {exc}", ok=False)

    def _command(self, line: str) -> Reply:
        name, _, arg = line.partition(" ")
        arg = arg.strip()
        if name in (":quit", ":exit", ":q"):
            return Reply("", quit=True)
        if name == ":help":
            return Reply(HELP)
        if name == ":load":
            return Reply(self.load([arg] if arg else self.paths))
        if name == ":package":
            return Reply(self.choose_package(arg))
        if name in (":request", ":input"):
            if arg:
                self.request = {} if arg == "clear" else self.read_object(arg, "request")
            return Reply(_json(self.request, indent=None))
        if name == ":facts":
            if arg:
                self.facts = None if arg == "clear" else self.read_object(arg, "facts")
            return Reply(_json(self.facts, indent=None) if self.facts is not None else "no facts")
        if name == ":now":
            if arg:
                self.now = None if arg == "clock" else parse_now(arg)
            return Reply(self._now().isoformat().replace("+00:00", "Z") + (" (the clock)" if self.now is None else ""))
        if name in (":decide", ":explain"):
            if arg:
                self.request = self.read_object(arg, "request")
            decision = self._engine().decide_at(self.request, self.facts, self._now())
            if name == ":explain":
                return Reply(_json(decision.explain))
            return Reply(_decision_line(decision))
        close = [c for c in COMMANDS if c.startswith(name)]
        hint = f" (did you mean {close[0]}?)" if len(close) == 1 else ""
        raise ReplError(f"unknown command {name}{hint}; :help lists the commands")

    # ------------------------------------------------------------ bundle

    def load(self, paths: list[str]) -> str:
        """Load a bundle; on failure the previous one stays loaded."""
        if not paths:
            raise ReplError(":load needs a path (a rules directory or file)")
        try:
            files = read_bundle_files(paths)
        except SourceError as exc:
            raise ReplError(str(exc)) from None
        if not any(not is_data_name(f.name) for f in files):
            raise ReplError(f"no .rules files in {' '.join(paths)}")
        texts = {f.display: f.text for f in files}
        names = {f.display: f.name for f in files}
        try:
            engine = CompiledEngine.from_texts(texts, names)
        except PolicyError as exc:
            raise ReplError("the bundle does not compile; it was not loaded\n" + str(exc)) from None
        self.paths, self.texts, self.names, self.engine = list(paths), texts, names, engine
        rules = {p: t for p, t in texts.items() if not is_data_name(names[p])}
        data = [DataFile(p, names[p], t) for p, t in texts.items() if is_data_name(names[p])]
        self.analysis = analyze_bundle(rules, data or None)
        packages = self.analysis.packages()
        if self.package not in packages:
            self.package = packages[0] if packages else DEFAULT_PACKAGE
        count = sum(len(p.rules) for p in engine.policy.program.packages)
        return (f"loaded {len(rules)} file{'s' if len(rules) != 1 else ''}, {count} rule{'s' if count != 1 else ''}, "
                f"{engine.bundle_hash[:19]}…; package {self.package}")

    def choose_package(self, name: str) -> str:
        packages = self.analysis.packages() if self.analysis is not None else []
        if not name:
            listed = ", ".join(f"*{p}" if p == self.package else p for p in packages) or "none loaded"
            return f"packages: {listed}"
        if name not in packages:
            raise ReplError(f"no package `{name}` in the bundle; packages: {', '.join(packages) or 'none'}")
        self.package = name
        return f"package {name}"

    def _engine(self) -> CompiledEngine:
        if self.engine is None:
            raise ReplError("no bundle loaded: :load PATH")
        return self.engine

    def _now(self) -> datetime:
        return self.now if self.now is not None else self.clock()

    # ------------------------------------------------------------ expressions

    def wrapper(self) -> str:
        """The text before the expression in the hidden file (completion reuses it)."""
        return f"package {self.package}\n\nlet {HIDDEN_LET} = "

    def evaluate(self, expr: str) -> str:
        prefix = self.wrapper()
        texts = {**self.texts, HIDDEN_FILE: prefix + expr + "\n"}
        names = {**self.names, HIDDEN_FILE: HIDDEN_FILE}
        try:
            engine = CompiledEngine.from_texts(texts, names)
        except PolicyError as exc:
            raise ReplError(self._explain_errors(exc.diagnostics, expr, prefix)) from None
        value_ir = next(v for p in engine.policy.program.packages if p.name == self.package
                        for n, v in p.lets if n == HIDDEN_LET)
        now = self._now()
        decision = engine.decide_at(self.request, self.facts, now)
        act = Activation(self.request, self.facts if self.facts is not None else {}, now)
        act.risk_score, act.risk_tier = Decimal(decision.risk_score), decision.risk_tier
        try:
            value = engine.policy.compiler.expr(value_ir)(act)
        except EvalError as exc:
            raise ReplError(f"evaluation failed: {exc} (a rule reading this would deny: fail closed)") from None
        return f"{show(value)} : {value_ir.type}"

    def _explain_errors(self, diags: tuple[Diagnostic, ...], expr: str, prefix: str) -> str:
        """The expression's errors at its own columns; the bundle's own errors as they are."""
        source = Source(INPUT, expr)
        shown = []
        first_line = prefix.count("\n") + 1
        shift = len(prefix.rsplit("\n", 1)[-1])

        def column(line: int, col: int) -> int:
            return max(1, min(col - shift if line == first_line else len(expr) + 1, len(expr) + 1))

        for d in (d for d in diags if d.is_error):
            if d.span.file != HIDDEN_FILE:
                shown.append(render(d, self._sources()))
                continue
            start = column(d.span.line, d.span.column)
            span = Span(INPUT, 1, start, 1, max(column(d.span.end_line, d.span.end_column), start + 1))
            moved = Diagnostic(d.severity, d.code, d.message, span, d.help)
            shown.append(render(moved, {INPUT: source}))
        return "\n".join(shown) or "the expression does not compile"

    def _sources(self) -> Mapping[str, Source]:
        return {p: Source(p, t) for p, t in self.texts.items()}

    def read_object(self, arg: str, what: str) -> dict:
        text = arg
        if arg.startswith("@"):
            path = Path(shlex.split(arg[1:])[0]) if arg[1:].strip() else None
            if path is None:
                raise ReplError(f"{arg}: name a JSON file after @")
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ReplError(f"cannot read {what} {path}: {exc.strerror}") from None
        try:
            value = json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise ReplError(f"{what} is not valid JSON: {exc.msg} at column {exc.colno}") from None
        if not isinstance(value, dict):
            raise ReplError(f"{what} must be a JSON object")
        return value


def parse_now(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError:
        raise ReplError(f"`{text}` is not an ISO-8601 time with a zone, e.g. 2026-11-21T10:00:00Z") from None


def _decision_line(d) -> str:
    lines = [f"{d.outcome} {format_string(d.reason_code)}" + (f" by {d.rule}" if d.rule else "")]
    if d.message:
        lines.append(f"  message  {d.message}")
    if d.route is not None:
        lines.append(f"  route    {d.route.role}, {d.route.approvals} approval{'s' if d.route.approvals != 1 else ''}, "
                     f"timeout {format_duration(d.route.timeout)}, on timeout {d.route.on_timeout}")
    lines.append(f"  risk     {d.risk_score} ({d.risk_tier})")
    lines.append(f"  explain  {d.explain['summary']}")
    return "\n".join(lines)


def _json(value: Any, indent: int | None = 2) -> str:
    return json.dumps(value, indent=indent, sort_keys=True, ensure_ascii=False, default=_plain)


def _plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return canonical_decimal(v)
    return str(v)


def show(v: Any) -> str:
    """A value as the language writes it."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Decimal):
        return canonical_decimal(v)
    if isinstance(v, str):
        return format_string(v)
    if isinstance(v, timedelta):
        try:
            return format_duration(v)
        except ValueError:
            return f"-{format_duration(-v)}" if v < timedelta(0) else str(v)
    if isinstance(v, datetime):
        return v.isoformat().replace("+00:00", "Z")
    if isinstance(v, tuple | list):
        return "[" + ", ".join(show(x) for x in v) + "]"
    if isinstance(v, frozenset):
        return "{" + ", ".join(sorted(show(x) for x in v)) + "}"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k}: {show(x)}" for k, x in v.items()) + "}"
    return str(v)
