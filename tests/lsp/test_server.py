"""`gavel lsp` end to end: a real server process over stdio, driven the way an editor drives it."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from gavel.lang.fmt import format_source
from gavel.lang.source import Source
from tests.lsp.helpers import REFUNDS, VENDORS, Editor, doc, position_of


def apply(text: str, edits: list[types.TextEdit]) -> str:
    """Apply text edits (UTF-16 positions; these texts are ASCII) from last to first."""
    lines = text.split("\n")

    def offset(p: types.Position) -> int:
        return sum(len(x) + 1 for x in lines[: p.line]) + p.character

    for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        text = text[: offset(e.range.start)] + e.new_text + text[offset(e.range.end):]
    return text


# ---------------------------------------------------------------- diagnostics


async def test_diagnostics_follow_typing_with_start_and_end(editor: Editor, bundle: Path) -> None:
    uri = editor.open(bundle / "refunds.rules")
    assert await editor.diagnostics(uri) == []
    broken = REFUNDS.replace("action.amount <= small", "action.amout <= small")
    editor.replace(uri, broken)
    (d,) = await editor.diagnostics(uri)
    assert d.code == "E101" and d.severity == types.DiagnosticSeverity.Error and d.source == "gavel"
    assert d.message.startswith("unknown path `action.amout`") and "did you mean `action.amount`?" in d.message
    start = position_of(broken, "action.amout")
    assert d.range == types.Range(start=start, end=types.Position(line=start.line, character=start.character + 12))
    editor.replace(uri, REFUNDS)
    assert await editor.diagnostics(uri) == []


async def test_a_syntax_error_while_typing_is_reported_where_it_is(editor: Editor, bundle: Path) -> None:
    uri = editor.open(bundle / "refunds.rules")
    half = REFUNDS.replace('  deny\n  when any tag', '  deny\n  when any tag in context.tags:')
    half = half[: half.index("rule tagged")] + "rule tagged\n  deny\n  when action.\n"
    editor.replace(uri, half)
    (d,) = await editor.diagnostics(uri)
    assert d.code == "E001" and d.message == "unexpected character `.`"
    dot = position_of(half, "when action.", len("when action"))
    assert d.range == types.Range(start=dot, end=types.Position(line=dot.line, character=dot.character + 1))


async def test_the_whole_directory_is_one_bundle(editor: Editor, bundle: Path) -> None:
    """A let removed in one file breaks a rule in another file of the same package: the other
    file gets the diagnostic, though it is not open."""
    (bundle / "limits.rules").write_text("package refunds\n\nlet ceiling = 900\n", encoding="utf-8")
    uses = REFUNDS.replace("action.amount <= small", "action.amount <= ceiling")
    uri = editor.open(bundle / "refunds.rules", uses)
    assert [d.code for d in await editor.diagnostics(uri)] == ["W301"]  # `small` is no longer used
    limits = editor.open(bundle / "limits.rules")
    editor.replace(limits, "package refunds\n\nlet roof = 900\n")
    diags = [d for d in await editor.diagnostics(uri) if d.code != "W301"]
    assert [d.code for d in diags] == ["E101"] and "unknown name `ceiling`" in diags[0].message
    assert [d.code for d in editor.client.diagnostics[limits]] == ["W301"]


async def test_data_files_are_part_of_the_bundle(editor: Editor, bundle: Path) -> None:
    uri = editor.open(bundle / "vendors.rules", VENDORS.replace("data.vendors", "data.vendor"))
    (d,) = await editor.diagnostics(uri)
    assert d.code == "E101" and "did you mean `data.vendors`?" in d.message


async def test_positions_count_utf16_code_units(editor: Editor, bundle: Path) -> None:
    text = 'package refunds\n\nrule r\n  deny "a.b"\n  when context.note == "😀" and action.amout > 1\n'
    uri = editor.open(bundle / "emoji.rules", text)
    (d,) = [d for d in await editor.diagnostics(uri) if d.code == "E101"]
    line = text.split("\n")[4]
    utf16 = len(line[: line.index("action.amout")].encode("utf-16-le")) // 2
    assert d.range.start == types.Position(line=4, character=utf16)
    assert utf16 == line.index("action.amout") + 1  # the emoji is two UTF-16 units


# ---------------------------------------------------------------- hover and completion


async def hover_text(client: LanguageClient, uri: str, pos: types.Position) -> str | None:
    found = await client.text_document_hover_async(types.HoverParams(text_document=doc(uri), position=pos))
    return found.contents.value if found is not None else None


async def test_hover_tells_types_and_docs(editor: Editor, client: LanguageClient, bundle: Path) -> None:
    uri = editor.open(bundle / "refunds.rules")
    text = REFUNDS
    assert "action.amount: number" in await hover_text(client, uri, position_of(text, "amount <= small", 2))
    assert "action: object" in await hover_text(client, uri, position_of(text, "action.amount <= small", 1))
    assert "let small: number = 500" in await hover_text(client, uri, position_of(text, "small\n", 1))
    assert "tag: dynamic" in await hover_text(client, uri, position_of(text, 'tag == "blocked"'))
    assert "rule `refunds.small_refund`" in await hover_text(client, uri, position_of(text, "small_refund"))
    editor.replace(uri, text.replace("action.amount <= small", "len(action.tool) <= small"))
    doc_text = await hover_text(client, uri, position_of(text, "action.amount <= small", 1))
    assert "len(string | list | set | object) -> number" in doc_text and "Characters of a string" in doc_text


async def completion_labels(client: LanguageClient, uri: str, pos: types.Position) -> list[str]:
    found = await client.text_document_completion_async(types.CompletionParams(text_document=doc(uri), position=pos))
    return [i.label for i in found.items]


async def test_completion_knows_paths_data_lets_builtins_and_reason_codes(
        editor: Editor, client: LanguageClient, bundle: Path) -> None:
    uri = editor.open(bundle / "vendors.rules")
    typing = VENDORS + '\nrule other\n  deny "'
    editor.replace(uri, typing)
    families = await completion_labels(client, uri, position_of(typing + "\n", 'deny "\n', 6))
    assert {"refund.", "vendor.", "refund.small", "vendor.known"} <= set(families)

    for prefix, expected in (("action.", {"amount", "currency", "tool"}), ("agent.spend.", {"today", "month"}),
                             ("data.", {"vendors"}), ("data.vendors.", {"approved", "region"})):
        typing = VENDORS + f'\nrule other\n  deny "x.y"\n  when {prefix}'
        editor.replace(uri, typing)
        end = types.Position(line=typing.count("\n"), character=len(typing.split("\n")[-1]))
        assert expected <= set(await completion_labels(client, uri, end)), prefix

    refunds = editor.open(bundle / "refunds.rules")
    typing = REFUNDS + '\nrule other\n  deny "x.y"\n  when sm'
    editor.replace(refunds, typing)
    end = types.Position(line=typing.count("\n"), character=len(typing.split("\n")[-1]))
    labels = await completion_labels(client, refunds, end)
    assert {"small", "fiat", "startswith", "action"} <= set(labels)


# ---------------------------------------------------------------- navigation and rename


async def test_definition_and_references_of_lets_and_rules(
        editor: Editor, client: LanguageClient, bundle: Path) -> None:
    uri = editor.open(bundle / "refunds.rules")
    text = REFUNDS
    use = position_of(text, "small\n")  # `<= small`, its use
    (found,) = await client.text_document_definition_async(types.DefinitionParams(text_document=doc(uri), position=use))
    assert found.uri == uri and found.range.start == position_of(text, "small = 500")
    refs = await client.text_document_references_async(types.ReferenceParams(
        text_document=doc(uri), position=use, context=types.ReferenceContext(include_declaration=True)))
    assert [r.range.start.line for r in refs] == [2, 10]

    expect = position_of(text, '"refunds.tagged"', 3)
    (rule,) = await client.text_document_definition_async(types.DefinitionParams(text_document=doc(uri),
                                                                                position=expect))
    assert rule.range.start == position_of(text, "tagged\n")
    refs = await client.text_document_references_async(types.ReferenceParams(
        text_document=doc(uri), position=position_of(text, "small_refund"),
        context=types.ReferenceContext(include_declaration=False)))
    assert sorted(r.range.start.line for r in refs) == sorted(
        position_of(text, '"refund.small"', 0, n).line for n in range(3))


async def test_rename_a_let_and_a_rule(editor: Editor, client: LanguageClient, bundle: Path) -> None:
    uri = editor.open(bundle / "refunds.rules")
    text = REFUNDS
    at = position_of(text, "small = 500")
    prepared = await client.text_document_prepare_rename_async(types.PrepareRenameParams(text_document=doc(uri),
                                                                                         position=at))
    assert prepared.placeholder == "small"
    edit = await client.text_document_rename_async(types.RenameParams(text_document=doc(uri), position=at,
                                                                     new_name="limit"))
    renamed = apply(text, edit.changes[uri])
    assert "let limit = 500" in renamed and "action.amount <= limit" in renamed and "<= small" not in renamed

    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=doc(uri), position=position_of(text, "tagged\n"), new_name="blocked_tag"))
    renamed = apply(text, edit.changes[uri])
    assert "rule blocked_tag" in renamed and 'expect deny "refunds.blocked_tag"' in renamed

    with pytest.raises(JsonRpcException, match="keyword"):
        await client.text_document_rename_async(types.RenameParams(text_document=doc(uri), position=at,
                                                                  new_name="when"))
    with pytest.raises(JsonRpcException, match="already has a let `fiat`"):
        await client.text_document_rename_async(types.RenameParams(text_document=doc(uri), position=at,
                                                                  new_name="fiat"))


# ---------------------------------------------------------------- formatting, fixes, tests


async def test_formatting_is_gavel_fmt(editor: Editor, client: LanguageClient, bundle: Path) -> None:
    messy = 'package refunds\nlet   small=500\nrule r deny "a.b" when action.amount<=small\n'
    uri = editor.open(bundle / "messy.rules", messy)
    edits = await client.text_document_formatting_async(types.DocumentFormattingParams(
        text_document=doc(uri), options=types.FormattingOptions(tab_size=2, insert_spaces=True)))
    assert apply(messy, edits) == format_source(Source("messy.rules", messy))[0]
    editor.replace(uri, messy + "rule (")
    assert await client.text_document_formatting_async(types.DocumentFormattingParams(
        text_document=doc(uri), options=types.FormattingOptions(tab_size=2, insert_spaces=True))) is None


async def test_quick_fix_applies_the_did_you_mean(editor: Editor, client: LanguageClient, bundle: Path) -> None:
    uri = editor.open(bundle / "refunds.rules")
    broken = REFUNDS.replace("action.amount <= small", "action.amout <= small")
    editor.replace(uri, broken)
    (d,) = await editor.diagnostics(uri)
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=doc(uri), range=d.range, context=types.CodeActionContext(diagnostics=[d])))
    (action,) = actions
    assert action.kind == types.CodeActionKind.QuickFix and action.title == "change to `action.amount`"
    fixed = apply(broken, action.edit.changes[uri])
    assert fixed == REFUNDS
    editor.replace(uri, fixed)
    assert await editor.diagnostics(uri) == []


async def test_code_lens_runs_a_test_block(editor: Editor, client: LanguageClient, bundle: Path) -> None:
    uri = editor.open(bundle / "refunds.rules")
    lenses = await client.text_document_code_lens_async(types.CodeLensParams(text_document=doc(uri)))
    titles = [lens.command.title for lens in lenses]
    assert titles == ["▶ Run 3 tests in this file", "▶ Run test", "▶ Run test", "▶ Run test"]
    runs = [lens.command for lens in lenses[1:]]
    passed = await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command=runs[0].command, arguments=runs[0].arguments))
    assert passed["passed"] == 1 and passed["failed"] == 0
    assert passed["text"].startswith("PASS  refunds.rules:")
    failed = await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command=runs[2].command, arguments=runs[2].arguments))
    assert failed["failed"] == 1 and failed["results"][0]["name"] == "a large refund is not small"
    assert failed["results"][0]["expected"] == 'allow "refund.small"'
    assert failed["results"][0]["actual"].startswith('deny "policy.no_match"')
    whole = await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command=lenses[0].command.command, arguments=lenses[0].command.arguments))
    assert (whole["passed"], whole["failed"]) == (2, 1) and whole["text"].endswith("2 passed, 1 failed")
    assert any("2 passed, 1 failed" in m.message for m in client.messages)


async def test_a_test_run_on_a_bundle_with_errors_says_so(editor: Editor, client: LanguageClient,
                                                         bundle: Path) -> None:
    uri = editor.open(bundle / "refunds.rules")
    lenses = await client.text_document_code_lens_async(types.CodeLensParams(text_document=doc(uri)))
    editor.replace(uri, REFUNDS.replace("<= small", "<= smal"))
    result = await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command=lenses[1].command.command, arguments=lenses[1].command.arguments))
    assert result["text"].startswith("the bundle does not compile (1 error)") and "E101" in result["text"]


# ---------------------------------------------------------------- broken text


async def test_every_request_on_half_typed_text_answers(editor: Editor, client: LanguageClient,
                                                       bundle: Path) -> None:
    """Each prefix of a file, as if typed so far: every request answers (no error response),
    and the server is still alive at the end."""
    uri = editor.open(bundle / "refunds.rules")
    cuts = sorted({*range(0, len(REFUNDS), 37), *(REFUNDS.index(w) + len(w) for w in ("action.", '"', "{", "any "))})
    for cut in cuts:
        text = REFUNDS[:cut]
        editor.replace(uri, text)
        end = types.Position(line=text.count("\n"), character=len(text.split("\n")[-1]))
        middle = types.Position(line=max(end.line // 2, 0), character=2)
        for pos in (end, middle):
            await client.text_document_hover_async(types.HoverParams(text_document=doc(uri), position=pos))
            await client.text_document_completion_async(types.CompletionParams(text_document=doc(uri), position=pos))
            await client.text_document_definition_async(types.DefinitionParams(text_document=doc(uri), position=pos))
            await client.text_document_references_async(types.ReferenceParams(
                text_document=doc(uri), position=pos, context=types.ReferenceContext(include_declaration=True)))
        await client.text_document_code_action_async(types.CodeActionParams(
            text_document=doc(uri), range=types.Range(start=types.Position(line=0, character=0), end=end),
            context=types.CodeActionContext(diagnostics=[])))
        await client.text_document_formatting_async(types.DocumentFormattingParams(
            text_document=doc(uri), options=types.FormattingOptions(tab_size=2, insert_spaces=True)))
    editor.replace(uri, REFUNDS)
    assert await editor.diagnostics(uri) == []
    assert client.error is None


async def test_files_changed_on_disk_are_read_again(editor: Editor, client: LanguageClient, bundle: Path) -> None:
    uri = editor.open(bundle / "refunds.rules")
    assert await editor.diagnostics(uri) == []
    added = bundle / "added.rules"
    added.write_text('package added\n\nrule r\n  deny "added.r"\n  when actoin.amount > 1\n', encoding="utf-8")
    client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(
        changes=[types.FileEvent(uri=added.as_uri(), type=types.FileChangeType.Created)]))
    await editor.settled(uri)
    (d,) = client.diagnostics[added.as_uri()]
    assert d.code == "E101" and "did you mean `action`?" in d.message
    added.unlink()
    client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(
        changes=[types.FileEvent(uri=added.as_uri(), type=types.FileChangeType.Deleted)]))
    await editor.settled(uri)
    assert list(client.diagnostics[added.as_uri()]) == []  # a deleted file's problems are cleared


async def test_an_untitled_document_is_a_bundle_of_its_own(editor: Editor, client: LanguageClient) -> None:
    uri = "untitled:Untitled-1"
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="gavel", version=1, text='package u\n\nrule r\n  deny "u.r"\n  when lenght("x") > 1\n')))
    (d,) = await editor.diagnostics(uri)
    assert d.code == "E106" and "did you mean `len`?" in d.message
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=doc(uri), range=d.range, context=types.CodeActionContext(diagnostics=[d])))
    assert [a.title for a in actions] == ["change to `len`"]
    assert actions[0].edit.changes[uri][0].new_text == "len"


SUB = 'package refunds\n\nrule tiny\n  allow "refund.tiny"\n  when action.amount < small\n'


async def test_a_file_in_a_subdirectory_is_its_own_bundle_by_default(editor: Editor, bundle: Path) -> None:
    (bundle / "sub").mkdir()
    uri = editor.open(bundle / "sub" / "tiny.rules", SUB)
    (d,) = await editor.diagnostics(uri)
    assert d.code == "E101" and "unknown name `small`" in d.message


async def test_bundle_roots_make_a_directory_tree_one_bundle(rooted_client: LanguageClient, bundle: Path) -> None:
    (bundle / "sub").mkdir()
    editor = Editor(rooted_client)
    uri = editor.open(bundle / "sub" / "tiny.rules", SUB)
    assert await editor.diagnostics(uri) == []  # `small` is the let of refunds.rules, one directory up


async def test_diagnostics_arrive_when_typing_pauses(editor: Editor, client: LanguageClient, bundle: Path) -> None:
    """No request forces a compile here: the server publishes once the changes stop coming
    (intermediate texts may or may not be compiled; the last one always is)."""
    uri = editor.open(bundle / "refunds.rules")
    await editor.settled(uri)
    for typed in ("action.a", "action.am", "action.amo"):
        editor.replace(uri, REFUNDS.replace("action.amount <= small", f"{typed} <= small"))
    while True:
        params = await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        if params.uri == uri and any("`action.amo`" in d.message for d in params.diagnostics):
            break
    assert [d.code for d in params.diagnostics] == ["E101"]
