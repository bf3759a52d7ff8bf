"""Reading `.rules` files (and a bundle's `data/**/*.json` files) from disk — the I/O edge in
front of the pure compiler."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gavel.lang.data import is_data_name
from gavel.lang.diagnostics import Diagnostic, error
from gavel.lang.source import Span

RULE_SUFFIX = ".rules"
DATA_DIR = "data"
DATA_SUFFIX = ".json"
# One limit for a `.rules` file wherever it comes from — `gavel check`/`test`/`fmt`/`eval`,
# `gavel bundle build`, `gavel serve --rules`, ValidateRules and every bundle the server
# compiles: platform teams generate per-agent rules (10,000 of them are ~1.3 MB in one file).
DEFAULT_MAX_RULES_FILE_BYTES = 16 * 1024 * 1024
MAX_RULES_FILE_BYTES_CEILING = 256 * 1024 * 1024  # no setting goes past it (nor lang.parse.MAX_SOURCE_BYTES)
RULES_FILE_LIMIT_VARIABLE = "GAVEL_MAX_RULES_FILE_BYTES"
MAX_DATA_FILE_BYTES = 4_000_000
MAX_FILES = 10_000


@dataclass(frozen=True, slots=True)
class RuleFile:
    display: str  # as the user should see it in diagnostics
    name: str  # relative to the bundle root; what the bundle hash covers
    text: str


class SourceError(Exception):
    """A path that cannot be read as rules (missing, not UTF-8, too large, …).

    `code` is the diagnostic code when the problem is the file's content rather than the path
    (E006: larger than the limit, E007: not UTF-8 or unreadable), so that `gavel check` can report
    it at `file:line:col` like any other diagnostic; None for a path that does not exist."""

    def __init__(self, path: str, message: str, code: str | None = None, line: int = 1, column: int = 1):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
        self.code = code
        self.line, self.column = line, column


def rules_file_limit(environ: Mapping[str, str] = os.environ) -> int:
    """The most bytes a `.rules` file may have: GAVEL_MAX_RULES_FILE_BYTES, else 16 MiB.

    A malformed value is a SourceError without a code (a usage error, like a missing path)."""
    raw = environ.get(RULES_FILE_LIMIT_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_MAX_RULES_FILE_BYTES
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_RULES_FILE_BYTES_CEILING:
        raise SourceError(RULES_FILE_LIMIT_VARIABLE,
                          f"must be a whole number of bytes from 1 to {MAX_RULES_FILE_BYTES_CEILING}, not `{raw}`")
    return int(raw)


def oversized(files: Mapping[str, str], limit: int) -> tuple[Diagnostic, ...]:
    """E006 at `name:1:1` for each rules file (data files have their own limit) over `limit` bytes."""
    found = []
    for name, text in sorted(files.items()):
        if is_data_name(name) or len(text) * 4 <= limit:  # at most 4 bytes a character: within the limit
            continue
        if len(text.encode("utf-8", "surrogatepass")) > limit:
            found.append(error("E006", f"file is larger than {limit} bytes", Span.point(name, 1, 1)))
    return tuple(found)


def read_rule_files(paths: Iterable[str | os.PathLike], max_file_bytes: int | None = None) -> list[RuleFile]:
    """All `.rules` files under the given directories and files, sorted by name (each at most
    `max_file_bytes`, by default `rules_file_limit()`)."""
    return _read_files(paths, with_data=False, max_file_bytes=max_file_bytes)


def read_bundle_files(paths: Iterable[str | os.PathLike], max_file_bytes: int | None = None) -> list[RuleFile]:
    """The `.rules` files, plus the data files (`data/**/*.json`, named `data/…`) of each
    directory given, sorted by name."""
    return _read_files(paths, with_data=True, max_file_bytes=max_file_bytes)


def _read_files(paths: Iterable[str | os.PathLike], with_data: bool, max_file_bytes: int | None) -> list[RuleFile]:
    limit = max_file_bytes if max_file_bytes is not None else rules_file_limit()
    found: dict[str, RuleFile] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for file in _walk(path, path, f"*{RULE_SUFFIX}"):
                _add(found, _read(file, file.relative_to(path).as_posix(), limit))
            if with_data and (path / DATA_DIR).is_dir():
                for file in _walk(path / DATA_DIR, path, f"*{DATA_SUFFIX}"):
                    _add(found, _read(file, file.relative_to(path).as_posix(), MAX_DATA_FILE_BYTES))
        elif path.is_file():
            _add(found, _read(path, path.name, limit))
        else:
            raise SourceError(str(raw), "no such file or directory")
        if len(found) > MAX_FILES:
            raise SourceError(str(raw), f"more than {MAX_FILES} rule files")
    return [found[k] for k in sorted(found)]


def _walk(under: Path, root: Path, pattern: str) -> list[Path]:
    """Files matching `pattern` below `under`, none hidden (relative to `root`)."""
    return [f for f in sorted(under.rglob(pattern))
            if f.is_file() and not any(part.startswith(".") for part in f.relative_to(root).parts)]


def _add(found: dict[str, RuleFile], f: RuleFile) -> None:
    other = found.get(f.name)
    if other is not None and other.display != f.display:
        raise SourceError(f.display, f"has the same bundle name `{f.name}` as {other.display}; "
                                     "give one directory, or files with distinct names")
    found[f.name] = f


def _read(path: Path, name: str, limit: int) -> RuleFile:
    display = os.path.relpath(path) if not path.is_absolute() else str(path)
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)  # never more than the limit in memory, whatever the file is
        if len(data) > limit:
            raise SourceError(display, f"file is larger than {limit} bytes", "E006")
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        column = len(data[line_start:exc.start].decode("utf-8", "replace")) + 1
        raise SourceError(display, f"not valid UTF-8 (byte {exc.start})", "E007",
                          data.count(b"\n", 0, exc.start) + 1, column) from None
    except OSError as exc:
        raise SourceError(display, exc.strerror or str(exc), "E007") from None
    return RuleFile(display, name, text)
