"""`gavel lsp` without its optional dependency says what to install, instead of a traceback."""

from __future__ import annotations

import subprocess
import sys

WITHOUT_PYGLS = "import sys; sys.modules['pygls'] = None; from gavel.cli import main; sys.exit(main(['lsp']))"


def test_without_the_lsp_extra_the_command_says_what_to_install() -> None:
    out = subprocess.run([sys.executable, "-c", WITHOUT_PYGLS], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip() == "gavel lsp: needs the lsp extra (pygls is not installed): pip install 'gavel[lsp]'"
