"""Reading `.rules` files (and a bundle's `data/**/*.json` files) from disk — the I/O edge in
front of the pure compiler."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

RULE_SUFFIX = ".rules"
DATA_DIR = "data"
DATA_SUFFIX = ".json"
MAX_FILE_BYTES = 1_000_000
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


def read_rule_files(paths: Iterable[str | os.PathLike]) -> list[RuleFile]:
    """All `.rules` files under the given directories and files, sorted by name."""
    return _read_files(paths, with_data=False)


def read_bundle_files(paths: Iterable[str | os.PathLike]) -> list[RuleFile]:
    """The `.rules` files, plus the data files (`data/**/*.json`, named `data/…`) of each
    directory given, sorted by name."""
    return _read_files(paths, with_data=True)


def _read_files(paths: Iterable[str | os.PathLike], with_data: bool) -> list[RuleFile]:
    found: dict[str, RuleFile] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for file in _walk(path, path, f"*{RULE_SUFFIX}"):
                _add(found, _read(file, file.relative_to(path).as_posix()))
            if with_data and (path / DATA_DIR).is_dir():
                for file in _walk(path / DATA_DIR, path, f"*{DATA_SUFFIX}"):
                    _add(found, _read(file, file.relative_to(path).as_posix(), MAX_DATA_FILE_BYTES))
        elif path.is_file():
            _add(found, _read(path, path.name))
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


def _read(path: Path, name: str, limit: int = MAX_FILE_BYTES) -> RuleFile:
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
