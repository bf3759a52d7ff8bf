"""Which bundle a document belongs to, and that bundle's files as the editor sees them.

A bundle is a directory read as `gavel check DIR` reads it: every `.rules` file below it and
its `data/**/*.json` files. A document belongs to the deepest configured bundle root that
holds it (`bundleRoots`, from the editor's settings), or else to its own directory (a data
file to the directory above its `data/`). Open documents replace their text on disk, so
diagnostics follow what is typed, not what was saved.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gavel.authoring.analysis import Analysis, analyze_bundle
from gavel.engine.engine import CompiledEngine
from gavel.lang.data import DataFile, is_data_name
from gavel.lang.diagnostics import Diagnostic, error
from gavel.lang.source import Span
from gavel.sources import DATA_DIR, DATA_SUFFIX, RULE_SUFFIX, SourceError, read_bundle_files


@dataclass
class Bundle:
    """One bundle's files (absolute path → text) and what the analysis found in them."""

    root: Path | None  # None: a document alone (untitled, or outside any directory)
    texts: dict[str, str]
    names: dict[str, str]  # absolute path → bundle name (`refunds.rules`, `data/vendors.json`)
    analysis: Analysis
    unreadable: list[Diagnostic] = field(default_factory=list)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [*self.unreadable, *self.analysis.compilation.diagnostics]

    def engine(self) -> CompiledEngine:
        """The bundle compiled for deciding (raises `PolicyError` when it does not compile)."""
        return CompiledEngine.from_texts(self.texts, self.names)


def normal(path: str | os.PathLike) -> str:
    return os.path.abspath(os.fspath(path))


class Bundles:
    def __init__(self, roots: Iterable[str | os.PathLike] = ()):
        self.roots = sorted({Path(normal(r)) for r in roots}, key=lambda p: len(p.parts), reverse=True)

    def root_for(self, path: str) -> Path:
        file = Path(normal(path))
        for root in self.roots:  # deepest first
            if root in file.parents:
                return root
        parent = file.parent
        if file.suffix == DATA_SUFFIX:
            for ancestor in (parent, *parent.parents):
                if ancestor.name == DATA_DIR:
                    return ancestor.parent
        return parent

    def load(self, path: str, open_texts: Mapping[str, str]) -> Bundle:
        """The bundle of the document at `path`, with the open documents' texts."""
        root = self.root_for(path)
        texts, names, unreadable = _read(root)
        for open_path, text in open_texts.items():
            name = _name_in(root, open_path)
            if name is not None:
                texts[open_path] = text
                names[open_path] = name
        if normal(path) not in texts and normal(path) in open_texts:  # e.g. a file type the walk skips
            texts[normal(path)] = open_texts[normal(path)]
            names[normal(path)] = Path(path).name
        return _analysed(root, texts, names, unreadable)


def alone(path: str, text: str) -> Bundle:
    """A document that belongs to no directory (an untitled editor)."""
    return _analysed(None, {path: text}, {path: Path(path).name or path}, [])


def _analysed(root: Path | None, texts: dict[str, str], names: dict[str, str],
              unreadable: list[Diagnostic]) -> Bundle:
    rules = {p: t for p, t in texts.items() if not is_data_name(names[p])}
    data = [DataFile(p, names[p], t) for p, t in texts.items() if is_data_name(names[p])]
    return Bundle(root, texts, names, analyze_bundle(rules, data if data else None), unreadable)


def _name_in(root: Path, path: str) -> str | None:
    """The bundle name of `path` under `root`, if it is one of the bundle's files."""
    file = Path(normal(path))
    if root not in file.parents:
        return None
    name = file.relative_to(root).as_posix()
    if any(part.startswith(".") for part in file.relative_to(root).parts):
        return None
    if name.endswith(RULE_SUFFIX) or is_data_name(name):
        return name
    return None


def _read(root: Path) -> tuple[dict[str, str], dict[str, str], list[Diagnostic]]:
    """The bundle's files on disk. A file that cannot be read as text is one diagnostic at its
    first line, as in `gavel check`; the rest of the bundle is still read."""
    texts: dict[str, str] = {}
    names: dict[str, str] = {}
    unreadable: list[Diagnostic] = []
    if not root.is_dir():
        return texts, names, unreadable
    try:
        files = read_bundle_files([root])
    except SourceError as exc:
        unreadable.append(error(exc.code or "E007", exc.message, Span.point(normal(exc.path), exc.line, exc.column)))
        files = []
        for candidate in sorted(root.rglob(f"*{RULE_SUFFIX}")):
            try:
                files.extend(read_bundle_files([candidate]))
            except SourceError:
                continue
    for f in files:
        path = normal(f.display)
        name = _name_in(root, path)
        if name is not None:
            texts[path], names[path] = f.text, name
    return texts, names, unreadable
