"""Fixtures for the fault tests: real `gavel serve` processes, stopped (or killed) afterwards."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.serve import Serve


@pytest.fixture
def serve(tmp_path: Path):
    """`serve(**kwargs)` makes a `Serve` in its own directory under tmp_path (not started); every
    one still running at the end is stopped, and killed if it does not stop."""
    made: list[Serve] = []

    def make(**kwargs) -> Serve:
        server = Serve(tmp_path / f"server-{len(made)}", **kwargs)
        made.append(server)
        return server

    factory: Callable[..., Serve] = make
    yield factory
    for server in made:
        server.stop()
