"""Shared by the language server's tests: the sample bundle, and an editor's moves."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types
from pytest_lsp import LanguageClient

REFUNDS = '''package refunds

let small = 500
let fiat = {"USD", "EUR"}

scope action.type == "refund"

rule small_refund
  allow "refund.small"
  when {
    action.amount <= small
    action.currency in fiat
  }

rule tagged
  deny
  when any tag in context.tags: tag == "blocked"

test "a small refund passes" {
  input { action: { type: "refund", amount: 100, currency: "USD" } }
  expect allow "refund.small"
}

test "a blocked tag is denied" {
  input { action: { type: "refund", amount: 100, currency: "USD" }, context: { tags: ["blocked"] } }
  expect deny "refunds.tagged"
}

test "a large refund is not small" {
  input { action: { type: "refund", amount: 900, currency: "USD" } }
  expect allow "refund.small"
}
'''

VENDORS = '''package vendors

rule known_vendor
  allow "vendor.known"
  when action.entity in data.vendors.approved
'''

VENDORS_JSON = '{"approved": ["acme", "globex"], "region": "eu"}\n'


class Editor:
    """What an editor does with documents: open, change, and wait until the server has answered."""

    def __init__(self, client: LanguageClient):
        self.client = client
        self.versions: dict[str, int] = {}

    def open(self, path: Path, text: str | None = None) -> str:
        uri = path.as_uri()
        self.versions[uri] = 1
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
            uri=uri, language_id="gavel", version=1,
            text=text if text is not None else path.read_text(encoding="utf-8"))))
        return uri

    def replace(self, uri: str, text: str) -> None:
        self.versions[uri] += 1
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))

    async def settled(self, uri: str) -> None:
        """The server answers in order: once this request is answered, the diagnostics it
        published for earlier changes have arrived."""
        await self.client.text_document_code_lens_async(
            types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri)))

    async def diagnostics(self, uri: str) -> list[types.Diagnostic]:
        await self.settled(uri)
        return list(self.client.diagnostics.get(uri, []))


def position_of(text: str, needle: str, offset: int = 0, occurrence: int = 0) -> types.Position:
    """The LSP position of `needle` (its `occurrence`-th appearance) plus `offset` characters."""
    index = -1
    for _ in range(occurrence + 1):
        index = text.index(needle, index + 1)
    index += offset
    line = text.count("\n", 0, index)
    return types.Position(line=line, character=index - (text.rfind("\n", 0, index) + 1))


def doc(uri: str) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri=uri)
