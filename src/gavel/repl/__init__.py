"""`gavel repl`: evaluate expressions and whole requests against a bundle, with facts and a
chosen `now`. `session.py` is what a line does, `completer.py` what Tab offers, and
`console.py` the terminal (readline history and completion when there is one)."""
