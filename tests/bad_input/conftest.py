"""One real `gavel serve` process shared by the bad-input tests (see served.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.bad_input.served import CRASH_MARKERS, ServedGavel


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedGavel]:
    server = ServedGavel(tmp_path_factory.mktemp("bad-input"))
    try:
        server.start()
        yield server
        server.assert_serving()
    finally:
        code = server.stop()
    log = server.log_text()
    assert code == 0, f"gavel serve exited with {code} on SIGTERM:\n{log[-4000:]}"
    for marker in CRASH_MARKERS:
        assert marker not in log, f"the server logged `{marker}` during the bad-input tests:\n{log[-6000:]}"
