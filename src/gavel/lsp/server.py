"""The language server: LSP requests in, `gavel.authoring` answers out.

Every change to a document recompiles its bundle with the pipeline `gavel check` uses and
publishes the diagnostics of every file in the bundle (a typo in one file can break a rule in
another). Requests then read that analysis. Any text is answered: a file that does not parse
gets its syntax error, completion from the raw text, and no hover rather than an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from gavel.authoring.completion import Candidate, complete
from gavel.authoring.hover import hover
from gavel.authoring.navigation import RenameError, definitions, references, rename, rename_target
from gavel.authoring.testrun import describe, run_selected
from gavel.engine.engine import PolicyError
from gavel.lang import syntax as ast
from gavel.lang.diagnostics import Diagnostic, Severity
from gavel.lang.fmt import format_source
from gavel.lang.source import Source, Span
from gavel.lsp.bundles import Bundle, Bundles, alone, normal
from gavel.lsp.positions import Codec, split_lines

DEBOUNCE_SECONDS = 0.15  # a pause in typing this long compiles the bundle
RUN_TEST = "gavel.runTest"
RUN_FILE_TESTS = "gavel.runFileTests"
SOURCE = "gavel"

_KINDS = {
    "field": types.CompletionItemKind.Field, "data": types.CompletionItemKind.Field,
    "let": types.CompletionItemKind.Variable, "variable": types.CompletionItemKind.Variable,
    "function": types.CompletionItemKind.Function, "keyword": types.CompletionItemKind.Keyword,
    "reason": types.CompletionItemKind.Value, "family": types.CompletionItemKind.Module,
    "root": types.CompletionItemKind.Module,
}


class GavelServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("gavel", _version(), text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.bundles = Bundles()
        self.current: dict[Path | str, Bundle] = {}  # bundle key → its last analysis
        self.published: dict[Path | str, set[str]] = {}  # bundle key → URIs given diagnostics
        self.pending: dict[Path | str, str] = {}  # bundle key → a changed URI not compiled yet
        self.timers: dict[Path | str, asyncio.TimerHandle] = {}

    # ------------------------------------------------------------ bundles

    @property
    def codec(self) -> Codec:
        return Codec(self.workspace.position_encoding)

    def open_texts(self) -> dict[str, str]:
        out = {}
        for uri, doc in self.workspace.text_documents.items():
            path = to_fs_path(uri)
            if path is not None and uri.startswith("file:"):
                out[normal(path)] = doc.source
        return out

    def key_of(self, uri: str) -> Path | str:
        """A file's bundle root; an untitled document is its own bundle, keyed by its URI."""
        path = to_fs_path(uri) if uri.startswith("file:") else None
        return self.bundles.root_for(path) if path is not None else uri

    def refresh(self, uri: str) -> Bundle:
        """Recompile the bundle of `uri` and publish its diagnostics."""
        key = self.key_of(uri)
        self.pending.pop(key, None)
        timer = self.timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if isinstance(key, str):
            bundle = alone(uri, self.workspace.get_text_document(uri).source)
        else:
            bundle = self.bundles.load(to_fs_path(uri), self.open_texts())
        self.current[key] = bundle
        self.publish(key, bundle)
        return bundle

    def changed(self, uri: str) -> None:
        """Typing: compile once the typing pauses (`DEBOUNCE_SECONDS`), not on every key. A
        request that comes first compiles at once (`bundle_of`), so answers are never stale."""
        key = self.key_of(uri)
        self.pending[key] = uri
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop in this thread: compile now
            self.refresh(uri)
            return
        timer = self.timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self.timers[key] = loop.call_later(DEBOUNCE_SECONDS, self._compile_pending, key)

    def _compile_pending(self, key: Path | str) -> None:
        self.timers.pop(key, None)
        uri = self.pending.get(key)
        if uri is not None and uri in self.workspace.text_documents:
            self.refresh(uri)
        else:
            self.pending.pop(key, None)

    def bundle_of(self, uri: str) -> Bundle:
        key = self.key_of(uri)
        bundle = self.current.get(key)
        if bundle is None or key in self.pending:
            bundle = self.refresh(self.pending.get(key, uri))
        return bundle

    def refresh_all(self) -> None:
        self.current.clear()
        for uri in list(self.workspace.text_documents):
            if self.key_of(uri) not in self.current:
                self.refresh(uri)

    def publish(self, key: Path | str, bundle: Bundle) -> None:
        by_file: dict[str, list[Diagnostic]] = {p: [] for p in bundle.texts}
        for d in bundle.diagnostics:
            by_file.setdefault(d.span.file, []).append(d)
        uris = set()
        for file, diags in by_file.items():
            uri = _uri(file)
            uris.add(uri)
            lines = split_lines(bundle.texts.get(file, ""))
            self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
                uri=uri, diagnostics=[self.lsp_diagnostic(d, lines) for d in diags]))
        for gone in self.published.get(key, set()) - uris:
            self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=gone, diagnostics=[]))
        self.published[key] = uris

    def lsp_diagnostic(self, d: Diagnostic, lines: list[str]) -> types.Diagnostic:
        message = d.message if not d.help else f"{d.message}\nhelp: {d.help}"
        return types.Diagnostic(
            range=self.codec.range(lines, d.span), message=message, code=d.code, source=SOURCE,
            severity=types.DiagnosticSeverity.Error if d.severity is Severity.ERROR
            else types.DiagnosticSeverity.Warning,
        )

    # ------------------------------------------------------------ helpers for requests

    def where(self, uri: str, position: types.Position) -> tuple[Bundle, str, list[str], int, int]:
        """The bundle, the file's path in it, its lines and the cursor as (line, column)."""
        bundle = self.bundle_of(uri)
        file = _file_of(uri)
        lines = split_lines(bundle.texts.get(file) or self.workspace.get_text_document(uri).source)
        line, column = self.codec.column(lines, position)
        return bundle, file, lines, line, column

    def location(self, bundle: Bundle, span: Span) -> types.Location:
        lines = split_lines(bundle.texts.get(span.file, ""))
        return types.Location(uri=_uri(span.file), range=self.codec.range(lines, span))

    def edits(self, bundle: Bundle, changes: dict[str, list[tuple[Span, str]]]) -> types.WorkspaceEdit:
        out: dict[str, list[types.TextEdit]] = {}
        for file, edits in changes.items():
            lines = split_lines(bundle.texts.get(file, ""))
            out[_uri(file)] = [types.TextEdit(range=self.codec.range(lines, s), new_text=t) for s, t in edits]
        return types.WorkspaceEdit(changes=out)


def _version() -> str:
    try:
        return metadata.version("gavel")
    except metadata.PackageNotFoundError:
        return "0"


def _uri(file: str) -> str:
    """Files are kept by absolute path; a document without one (untitled) by its URI."""
    return (from_fs_path(file) or file) if Path(file).is_absolute() else file


def _file_of(uri: str) -> str:
    path = to_fs_path(uri)
    return normal(path) if path is not None and uri.startswith("file:") else uri


def initialize(ls: GavelServer, params: types.InitializeParams) -> None:
    options = params.initialization_options if isinstance(params.initialization_options, dict) else {}
    roots = options.get("bundleRoots") or []
    base = None
    if params.workspace_folders:
        base = to_fs_path(params.workspace_folders[0].uri)
    elif params.root_uri:
        base = to_fs_path(params.root_uri)
    if isinstance(roots, list) and roots:
        extra = [Path(base, r) if base and not Path(r).is_absolute() else Path(r) for r in roots if isinstance(r, str)]
        ls.bundles = Bundles([*ls.bundles.roots, *extra])


def did_open(ls: GavelServer, params: types.DidOpenTextDocumentParams) -> None:
    ls.refresh(params.text_document.uri)


def did_change(ls: GavelServer, params: types.DidChangeTextDocumentParams) -> None:
    ls.changed(params.text_document.uri)


def did_save(ls: GavelServer, params: types.DidSaveTextDocumentParams) -> None:
    ls.refresh(params.text_document.uri)


def did_close(ls: GavelServer, params: types.DidCloseTextDocumentParams) -> None:
    """The file on disk counts again; a bundle with no open document keeps its last diagnostics
    (as an editor expects of a project's problems). An untitled document's go with it."""
    uri = params.text_document.uri
    key = ls.key_of(uri)
    ls.pending.pop(key, None)
    if isinstance(key, str):
        ls.current.pop(key, None)
        ls.published.pop(key, None)
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
        return
    bundle = ls.bundles.load(to_fs_path(uri), ls.open_texts())
    ls.current[key] = bundle
    ls.publish(key, bundle)


def did_change_watched_files(ls: GavelServer, params: types.DidChangeWatchedFilesParams) -> None:
    ls.refresh_all()


def on_hover(ls: GavelServer, params: types.HoverParams) -> types.Hover | None:
    bundle, file, lines, line, column = ls.where(params.text_document.uri, params.position)
    found = hover(bundle.analysis, file, line, column)
    if found is None:
        return None
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=found.markdown),
                       range=ls.codec.range(lines, found.span))


def on_completion(ls: GavelServer, params: types.CompletionParams) -> types.CompletionList:
    bundle, file, lines, line, column = ls.where(params.text_document.uri, params.position)
    text = ls.workspace.get_text_document(params.text_document.uri).source
    found = complete(bundle.analysis, file, text, line, column)
    replace = types.Range(start=ls.codec.position(lines, found.line, found.start_column),
                          end=ls.codec.position(lines, line, column))
    return types.CompletionList(is_incomplete=False, items=[_item(c, replace) for c in found.items])


def _item(c: Candidate, replace: types.Range) -> types.CompletionItem:
    doc = types.MarkupContent(kind=types.MarkupKind.Markdown, value=c.documentation) if c.documentation else None
    return types.CompletionItem(label=c.label, kind=_KINDS.get(c.kind), detail=c.detail or None, documentation=doc,
                                text_edit=types.TextEdit(range=replace, new_text=c.label))


def on_definition(ls: GavelServer, params: types.DefinitionParams) -> list[types.Location]:
    bundle, file, _, line, column = ls.where(params.text_document.uri, params.position)
    return [ls.location(bundle, s) for s in definitions(bundle.analysis, file, line, column)]


def on_references(ls: GavelServer, params: types.ReferenceParams) -> list[types.Location]:
    bundle, file, _, line, column = ls.where(params.text_document.uri, params.position)
    spans = references(bundle.analysis, file, line, column, params.context.include_declaration)
    return [ls.location(bundle, s) for s in spans]


def on_prepare_rename(ls: GavelServer, params: types.PrepareRenameParams) -> types.PrepareRenamePlaceholder:
    bundle, file, lines, line, column = ls.where(params.text_document.uri, params.position)
    try:
        target = rename_target(bundle.analysis, file, line, column)
    except RenameError as exc:
        raise JsonRpcInvalidParams(str(exc)) from None
    return types.PrepareRenamePlaceholder(range=ls.codec.range(lines, target.span), placeholder=target.symbol.name)


def on_rename(ls: GavelServer, params: types.RenameParams) -> types.WorkspaceEdit:
    bundle, file, _, line, column = ls.where(params.text_document.uri, params.position)
    try:
        changes = rename(bundle.analysis, file, line, column, params.new_name)
    except RenameError as exc:
        raise JsonRpcInvalidParams(str(exc)) from None
    return ls.edits(bundle, changes)


def on_formatting(ls: GavelServer, params: types.DocumentFormattingParams) -> list[types.TextEdit] | None:
    """`gavel fmt` of the whole document; nothing for a document that does not parse (its
    syntax error is already shown)."""
    uri = params.text_document.uri
    text = ls.workspace.get_text_document(uri).source
    formatted, _ = format_source(Source(_file_of(uri), text))
    if formatted is None or formatted == text:
        return None if formatted is None else []
    lines = split_lines(text)
    end = types.Position(line=len(lines) - 1, character=ls.codec.units(lines[-1]))
    return [types.TextEdit(range=types.Range(start=types.Position(line=0, character=0), end=end),
                           new_text=formatted)]


def on_code_action(ls: GavelServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    """The fixes that the diagnostics in the range carry (`lang.diagnostics.Fix`)."""
    uri = params.text_document.uri
    bundle = ls.bundle_of(uri)
    file = _file_of(uri)
    lines = split_lines(bundle.texts.get(file, ""))
    actions = []
    for d in bundle.diagnostics:
        if d.span.file != file or not d.fixes:
            continue
        diag_range = ls.codec.range(lines, d.span)
        if not _overlaps(diag_range, params.range):
            continue
        for fix in d.fixes:
            actions.append(types.CodeAction(
                title=fix.title, kind=types.CodeActionKind.QuickFix, diagnostics=[ls.lsp_diagnostic(d, lines)],
                is_preferred=len(d.fixes) == 1, edit=ls.edits(bundle, {fix.span.file: [(fix.span, fix.replacement)]}),
            ))
    return actions


def _overlaps(a: types.Range, b: types.Range) -> bool:
    def key(p: types.Position) -> tuple[int, int]:
        return p.line, p.character

    return key(a.start) <= key(b.end) and key(b.start) <= key(a.end)


def on_code_lens(ls: GavelServer, params: types.CodeLensParams) -> list[types.CodeLens]:
    uri = params.text_document.uri
    bundle = ls.bundle_of(uri)
    file = _file_of(uri)
    module = bundle.analysis.module(file)
    if module is None:
        return []
    lines = split_lines(bundle.texts.get(file, ""))
    tests = [i for i in module.items if isinstance(i, ast.TestDecl)]
    lenses = []
    if tests:
        lenses.append(types.CodeLens(
            range=ls.codec.range(lines, module.package.span),
            command=types.Command(title=f"▶ Run {len(tests)} test{'s' if len(tests) != 1 else ''} in this file",
                                  command=RUN_FILE_TESTS, arguments=[uri])))
    for test in tests:
        first_line = Span(file, test.span.line, test.span.column, test.span.line, test.span.column + len("test"))
        lenses.append(types.CodeLens(
            range=ls.codec.range(lines, first_line),
            command=types.Command(title="▶ Run test", command=RUN_TEST, arguments=[uri, test.span.line])))
    return lenses


def run_test(ls: GavelServer, uri: str, line: int) -> dict[str, Any]:
    """Run the test that starts on `line` (1-based, as the code lens gives it)."""
    return _run(ls, uri, line)


def run_file_tests(ls: GavelServer, uri: str) -> dict[str, Any]:
    return _run(ls, uri, None)


def _run(ls: GavelServer, uri: str, line: int | None) -> dict[str, Any]:
    bundle = ls.bundle_of(uri)
    file = _file_of(uri)
    try:
        engine = bundle.engine()
    except PolicyError as exc:
        errors = [d for d in exc.diagnostics if d.is_error]
        text = f"the bundle does not compile ({len(errors)} error{'s' if len(errors) != 1 else ''}): " \
               + "; ".join(d.headline() for d in errors[:3])
        ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Error, message=text))
        return {"passed": 0, "failed": 0, "results": [], "text": text}
    report = run_selected(engine, file, line)
    if not report.results:
        text = "no test starts on that line" if line is not None else "this file has no tests"
        ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=text))
        return {"passed": 0, "failed": 0, "results": [], "text": text}
    texts = [describe(r, _where(bundle, r.test.span)) for r in report.results]
    text = "\n".join([*texts, f"{report.passed} passed, {report.failed} failed"])
    ls.window_show_message(types.ShowMessageParams(
        type=types.MessageType.Info if report.failed == 0 else types.MessageType.Warning, message=text))
    ls.window_log_message(types.LogMessageParams(type=types.MessageType.Log, message=text))
    return {
        "passed": report.passed, "failed": report.failed, "text": text,
        "results": [{"name": r.test.name, "line": r.test.span.line, "passed": r.passed, "expected": r.expected,
                     "actual": r.actual, "explain": r.decision.explain["summary"]} for r in report.results],
    }


def _where(bundle: Bundle, span: Span) -> str:
    return f"{bundle.names.get(span.file, span.file)}:{span.line}"


def build_server(roots: Iterable[str] = ()) -> GavelServer:
    """A server with every feature registered; `roots` are bundle roots (the editor's
    `bundleRoots` setting adds to them)."""
    ls = GavelServer()
    ls.bundles = Bundles(roots)
    ls.feature(types.INITIALIZE)(initialize)
    ls.feature(types.TEXT_DOCUMENT_DID_OPEN)(did_open)
    ls.feature(types.TEXT_DOCUMENT_DID_CHANGE)(did_change)
    ls.feature(types.TEXT_DOCUMENT_DID_SAVE)(did_save)
    ls.feature(types.TEXT_DOCUMENT_DID_CLOSE)(did_close)
    ls.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)(did_change_watched_files)
    ls.feature(types.TEXT_DOCUMENT_HOVER)(on_hover)
    ls.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[".", '"']))(on_completion)
    ls.feature(types.TEXT_DOCUMENT_DEFINITION)(on_definition)
    ls.feature(types.TEXT_DOCUMENT_REFERENCES)(on_references)
    ls.feature(types.TEXT_DOCUMENT_PREPARE_RENAME)(on_prepare_rename)
    ls.feature(types.TEXT_DOCUMENT_RENAME)(on_rename)
    ls.feature(types.TEXT_DOCUMENT_FORMATTING)(on_formatting)
    ls.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))(on_code_action)
    ls.feature(types.TEXT_DOCUMENT_CODE_LENS)(on_code_lens)
    ls.command(RUN_TEST)(run_test)
    ls.command(RUN_FILE_TESTS)(run_file_tests)
    return ls


def serve(roots: Iterable[str] = ()) -> None:
    """Serve over stdin/stdout until the client says exit."""
    build_server(roots).start_io()
