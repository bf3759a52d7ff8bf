"""Imported once, by the forkserver the policy compile workers are forked from (and nowhere
else): it builds the rule parser there, so that every compile starts with one instead of
spending half a second building its own."""

from gavel.adapters import compile_workers  # noqa: F401 - the workers' code, imported before any fork
from gavel.lang.parse import parse_source
from gavel.lang.source import Source

parse_source(Source("<preload>", "package preload\n"))
