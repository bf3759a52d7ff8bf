"""The embeddable engine, pure: compile from texts, decide with an explicit `now`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from gavel.engine.decision import Decision
from gavel.engine.evaluate import evaluate, evaluate_naive
from gavel.engine.policy import CompiledPolicy, bundle_hash, compile_policy
from gavel.lang.analysis import analyze
from gavel.lang.data import DATA_SUFFIX, DataFile, is_data_name
from gavel.lang.diagnostics import Diagnostic, error, render_all, sort_diagnostics
from gavel.lang.pipeline import Compilation, compile_sources
from gavel.lang.source import Span


class PolicyError(Exception):
    """Policy text that does not compile; `diagnostics` lists every problem found."""

    def __init__(self, diagnostics: tuple[Diagnostic, ...], rendered: str | None = None):
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.is_error]
        super().__init__(rendered or "\n".join(d.headline() for d in errors) or "policy does not compile")


class InvalidInput(ValueError):
    """A request, facts or time the engine cannot decide on."""


class CompiledEngine:
    def __init__(self, policy: CompiledPolicy, compilation: Compilation):
        self.policy = policy
        self.compilation = compilation
        self._warnings: tuple[Diagnostic, ...] | None = None

    @classmethod
    def from_texts(cls, texts: Mapping[str, str], hash_names: Mapping[str, str] | None = None) -> CompiledEngine:
        """Compile `{display path: text}`; `hash_names` maps display paths to bundle names.

        Files whose bundle name is `data/**/*.json` are the bundle's data files; the rest are rules.
        """
        names = hash_names or {p: p for p in texts}
        rules = {p: t for p, t in texts.items() if not is_data_name(names[p])}
        stray = [error("E008", "a JSON file outside `data/` is not part of a bundle", Span.point(p, 1, 1),
                       "data files go under `data/`, e.g. data/vendors.json")
                 for p in sorted(rules) if names[p].endswith(DATA_SUFFIX)]
        if stray:
            raise PolicyError(tuple(stray), render_all(stray, {}))
        data = [DataFile(p, names[p], t) for p, t in texts.items() if is_data_name(names[p])]
        compilation = compile_sources(rules, stop_after="lower", data=data)  # analysis runs on demand
        if not compilation.ok:
            raise PolicyError(compilation.diagnostics, render_all(compilation.errors, compilation.all_sources))
        digest = bundle_hash({names[p]: t for p, t in texts.items()})
        return cls(compile_policy(compilation.program, compilation.sources, digest, names), compilation)

    @property
    def bundle_hash(self) -> str:
        return self.policy.bundle_hash

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        """Checker warnings plus the analysis pass (shadowed and unreachable rules), computed
        on first use: serving never needs them, and at 10,000 rules they cost seconds."""
        if self._warnings is None:
            found = analyze(self.compilation.program) if self.compilation.program is not None else ()
            self._warnings = sort_diagnostics((*self.compilation.warnings, *found))
        return self._warnings

    def decide_at(self, request: Mapping, facts: Mapping | None, now: datetime, naive: bool = False) -> Decision:
        if not isinstance(request, Mapping):
            raise InvalidInput("request must be a mapping")
        if facts is not None and not isinstance(facts, Mapping):
            raise InvalidInput("facts must be a mapping or None")
        if not isinstance(now, datetime):
            raise InvalidInput("now must be a datetime")
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        run = evaluate_naive if naive else evaluate
        return run(self.policy, request, facts, now)
