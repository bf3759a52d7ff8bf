"""`gavel.Engine`: the in-process API for platform teams (and the server).

    engine = Engine.load("rules/")
    d = engine.decide({"action": {"type": "refund_approve", "amount": "120.00"}, "agent": {"id": "a1"}})
    d.outcome, d.reason_code, d.rule, d.explain, d.to_dict()

This module is the edge: it reads files and the clock, then hands pure data to the engine.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gavel.engine.decision import Decision
from gavel.engine.engine import CompiledEngine, InvalidInput, PolicyError
from gavel.engine.policy import bundle_hash
from gavel.lang.diagnostics import error
from gavel.lang.source import Span
from gavel.sources import RuleFile, SourceError, read_bundle_files

if TYPE_CHECKING:
    from gavel.bundles import Bundle

__all__ = ["Decision", "Engine", "InvalidInput", "PolicyError"]


@contextlib.contextmanager
def gc_paused():
    """Compiling allocates millions of small objects and frees almost none; the cyclic
    collector would scan them over and over (a third of the load time at 10,000 rules)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Engine(CompiledEngine):
    _cache: OrderedDict[tuple, Engine] = OrderedDict()
    _cache_lock = threading.Lock()  # the server compiles in threads (gavel.adapters.compile_workers)
    CACHE_SIZE = 8

    @classmethod
    def _compiled(cls, texts: dict[str, str], names: dict[str, str]) -> Engine:
        """Compile, or reuse the engine compiled from exactly these files (keyed by content
        hash and display paths): reloading an unchanged directory costs nothing."""
        key = cls._key(texts, names)
        hit = cls._cached(key)
        if hit is not None:
            return hit
        with gc_paused():
            engine = cls.from_texts(texts, names)
        with cls._cache_lock:
            cls._cache[key] = engine
            while len(cls._cache) > cls.CACHE_SIZE:
                cls._cache.popitem(last=False)
        return engine

    @staticmethod
    def _key(texts: Mapping[str, str], names: Mapping[str, str]) -> tuple:
        return bundle_hash({names[p]: t for p, t in texts.items()}), tuple(sorted(names.items()))

    @classmethod
    def _cached(cls, key: tuple) -> Engine | None:
        with cls._cache_lock:
            hit = cls._cache.get(key)
            if hit is not None:
                cls._cache.move_to_end(key)
            return hit

    @classmethod
    def cached(cls, sources: Mapping[str, str]) -> Engine | None:
        """The engine `from_sources(sources)` would return without compiling, if there is one."""
        return cls._cached(cls._key(sources, {p: p for p in sources}))

    @classmethod
    def load(cls, *paths: str | os.PathLike | Iterable[str | os.PathLike]) -> Engine:
        """Compile the `.rules` files in the given directories or files, and each directory's
        `data/**/*.json` data files; raise PolicyError."""
        flat: list[str | os.PathLike] = []
        for p in paths:
            if isinstance(p, str | os.PathLike):
                flat.append(p)
            else:
                flat.extend(p)
        try:
            files = read_bundle_files(flat)
        except SourceError as exc:
            raise PolicyError((error("E007", exc.message, Span.point(exc.path, 1, 1)),)) from None
        return cls.from_files(files)

    @classmethod
    def from_files(cls, files: Iterable[RuleFile]) -> Engine:
        """Compile files already read (`gavel.sources`): diagnostics show their display paths."""
        files = list(files)
        return cls._compiled({f.display: f.text for f in files}, {f.display: f.name for f in files})

    @classmethod
    def from_sources(cls, sources: Mapping[str, str]) -> Engine:
        """Compile in-memory `{path: text}`; `data/NAME.json` entries are data files (JSON text)."""
        return cls._compiled(dict(sources), {p: p for p in sources})

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> Engine:
        """Compile a `gavel.bundles.Bundle` (cached by its hash); raise PolicyError.

        Diagnostics and rule locations use the bundle's file names."""
        return cls.from_sources(bundle.files)

    def decide(self, request: Mapping, facts: Mapping | None = None, now: datetime | None = None) -> Decision:
        return self.decide_at(request, facts, now if now is not None else datetime.now(UTC))
