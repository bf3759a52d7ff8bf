"""`gavel lsp`: a Language Server over the same pipeline as `gavel check`.

`server.py` speaks the protocol (pygls, an optional dependency: `pip install 'gavel[lsp]'`);
`bundles.py` reads the bundles from disk; what the server knows about the language comes
from `gavel.authoring`. Importing this package imports neither pygls nor lsprotocol.
"""
