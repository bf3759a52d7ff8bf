"""Data files: JSON constants that a bundle's rules read under the root name `data`.

The bundle file `data/vendors.json` is read as `data.vendors`, and `data/eu/banks.json` as
`data.eu.banks`. Numbers are exact decimals, arrays are lists and objects keep their keys.
The checker knows the file names (an unknown one is E101 with a did-you-mean). Lowering folds
the values into constants, so a decision never reads a file, and the decision tree indexes
`action.vendor in data.vendors` like a literal set. Pure: texts in, values and diagnostics out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from gavel.lang.diagnostics import Diagnostic, error
from gavel.lang.source import Source, Span
from gavel.lang.types import DATA_ROOT, DYNAMIC, Type
from gavel.lang.values import from_data

DATA_PREFIX = DATA_ROOT + "/"
DATA_SUFFIX = ".json"
MAX_DATA_BYTES = 4_000_000
MAX_DATA_DEPTH = 64
_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class DataFile:
    path: str  # as shown in diagnostics
    name: str  # the bundle name, `data/…/stem.json`
    text: str


@dataclass(frozen=True)
class BundleData:
    """The data files of one bundle, as the checker and the lowering pass need them."""

    values: Mapping[str, Any] = field(default_factory=dict)  # nested by name segment; language values
    schema: dict = field(default_factory=dict)  # the same shape; a file is `DYNAMIC`
    sources: Mapping[str, Source] = field(default_factory=dict)


def is_data_name(name: str) -> bool:
    """Whether a bundle name is a data file (`data/**/*.json`)."""
    return name.startswith(DATA_PREFIX) and name.endswith(DATA_SUFFIX)


def read_data(values: Mapping[str, Any], keys: Sequence[str]) -> Any:
    """The value at `data.<keys>`: a missing member is null, as for request paths."""
    v: Any = values
    for k in keys:
        v = v.get(k) if isinstance(v, Mapping) else None
    return v


def load_data(files: Sequence[DataFile]) -> tuple[BundleData, tuple[Diagnostic, ...]]:
    """Parse every data file and arrange them by name; each problem is an E006 or E008."""
    diags: list[Diagnostic] = []
    values: dict[str, Any] = {}
    schema: dict = {}
    sources = {}
    for f in sorted(files, key=lambda f: f.name):
        sources[f.path] = Source(f.path, f.text)
        segments = f.name[len(DATA_PREFIX):-len(DATA_SUFFIX)].split("/")
        bad = next((s for s in segments if not _SEGMENT.fullmatch(s)), None)
        if bad is not None:
            diags.append(error("E008", f"data file name `{f.name}` is not a name rules can read", _start(f),
                               "name data files and their folders with letters, digits and `_`, e.g. "
                               "data/approved_vendors.json"))
            continue
        value, problem = _parse(f)
        if problem is not None:
            diags.append(problem)
            continue
        clash = _place(values, schema, segments, value)
        if clash is not None:
            diags.append(error("E008", f"`data.{clash}` is both a data file and a folder of data files",
                               _start(f), "rename the file or the folder"))
    return BundleData(values, schema, sources), tuple(diags)


def _start(f: DataFile) -> Span:
    return Span.point(f.path, 1, 1)


def _parse(f: DataFile) -> tuple[Any, Diagnostic | None]:
    if len(f.text.encode("utf-8")) > MAX_DATA_BYTES:
        return None, error("E006", f"file is larger than {MAX_DATA_BYTES} bytes", _start(f))
    try:
        raw = json.loads(f.text, parse_float=Decimal, parse_int=Decimal, parse_constant=_refuse_constant,
                         object_pairs_hook=_refuse_duplicates)
    except json.JSONDecodeError as exc:
        message = exc.msg[:1].lower() + exc.msg[1:]
        return None, error("E008", f"malformed JSON: {message}", Span.point(f.path, exc.lineno, exc.colno),
                           "data files hold one JSON value")
    except RecursionError:
        return None, _too_deep(f)
    except ValueError as exc:
        return None, error("E008", f"malformed JSON: {exc}", _start(f), "data files hold one JSON value")
    if _depth(raw) > MAX_DATA_DEPTH:
        return None, _too_deep(f)
    return from_data(raw), None


def _too_deep(f: DataFile) -> Diagnostic:
    return error("E005", f"data nested deeper than {MAX_DATA_DEPTH} levels", _start(f))


def _place(values: dict, schema: dict, segments: list[str], value: Any) -> str | None:
    """Put one file's value in the tree; the dotted name that clashes, if any."""
    for i, seg in enumerate(segments[:-1]):
        node = schema.setdefault(seg, {})
        if isinstance(node, Type):
            return ".".join(segments[: i + 1])
        schema, values = node, values.setdefault(seg, {})
    last = segments[-1]
    if last in schema:
        return ".".join(segments)
    schema[last] = DYNAMIC
    values[last] = value
    return None


def _depth(v: Any) -> int:
    deepest, stack = 0, [(v, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DATA_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((x, depth + 1) for x in item.values())
        elif isinstance(item, list):
            stack.extend((x, depth + 1) for x in item)
    return deepest


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"key `{dup}` given twice in one object")
    return out


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"`{name}` is not a JSON number")
