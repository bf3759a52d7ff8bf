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
    """A path that cannot be read as rules (missing, not UTF-8, too large, …)."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


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
        size = path.stat().st_size
        if size > limit:
            raise SourceError(display, f"file is larger than {limit} bytes")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(display, f"not valid UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise SourceError(display, exc.strerror or str(exc)) from None
    return RuleFile(display, name, text)
