"""What editors and the REPL know about a bundle: symbols, types at a position, completion,
hover text, renames and test runs.

Pure, like the language it reads: texts and positions in, plain data out. The protocol edges
(`gavel.lsp` speaks LSP, `gavel.repl` a console) convert; nothing here reads files or clocks.
Positions are the language's own: lines and columns from 1, columns in characters.
"""
