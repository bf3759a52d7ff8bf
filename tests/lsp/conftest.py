"""A real `gavel lsp` process over stdio (pytest-lsp), on a bundle written to a temporary directory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.lsp.helpers import REFUNDS, VENDORS, VENDORS_JSON, Editor


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    root = tmp_path / "policies"
    (root / "data").mkdir(parents=True)
    (root / "refunds.rules").write_text(REFUNDS, encoding="utf-8")
    (root / "vendors.rules").write_text(VENDORS, encoding="utf-8")
    (root / "data" / "vendors.json").write_text(VENDORS_JSON, encoding="utf-8")
    return root


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "gavel.cli", "lsp"]))
async def client(lsp_client: LanguageClient, bundle: Path):
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        root_uri=bundle.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=bundle.as_uri(), name="policies")],
    ))
    yield
    await lsp_client.shutdown_session()


@pytest.fixture
def editor(client: LanguageClient) -> Editor:
    return Editor(client)


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "gavel.cli", "lsp"]))
async def rooted_client(lsp_client: LanguageClient, bundle: Path):
    """A client whose settings make the whole `policies` directory one bundle (`bundleRoots`)."""
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        workspace_folders=[types.WorkspaceFolder(uri=bundle.parent.as_uri(), name="project")],
        initialization_options={"bundleRoots": ["policies"]},
    ))
    yield
    await lsp_client.shutdown_session()
