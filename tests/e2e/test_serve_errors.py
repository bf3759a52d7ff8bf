"""`gavel serve` refusing to start says why in one line and exits 2 (a usage error): a gRPC or
HTTP port that is taken (no gRPC C-core log line, no traceback), a bad --log-level."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_serve_process import GAVEL, env_for


def serve(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*GAVEL, "serve", *args], env=env_for(workdir), capture_output=True, text=True, timeout=120)


@pytest.fixture
def taken():
    """A loopback port another process listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("flag", ["--grpc-addr", "--http-addr"])
def test_a_taken_port_is_one_line_and_exit_2(workdir: Path, taken: int, flag: str) -> None:
    other = "--http-addr" if flag == "--grpc-addr" else "--grpc-addr"
    out = serve(workdir, flag, f"127.0.0.1:{taken}", other, "127.0.0.1:0")
    assert out.returncode == 2, out.stderr
    assert out.stderr.splitlines() == [
        f"gavel serve: cannot listen on 127.0.0.1:{taken} ({flag}): Address already in use"], out.stderr
    assert not (workdir / "data").exists()  # refused before touching the store


def test_a_bad_log_level_is_one_line_and_exit_2(workdir: Path) -> None:
    out = serve(workdir, "--log-level", "loud", "--grpc-addr", "127.0.0.1:0")
    assert out.returncode == 2, out.stderr
    assert out.stderr.splitlines() == [
        "gavel: invalid settings: log_level: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, not `loud`"]
    lower = serve(workdir, "--log-level", "warning", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
                  "--rules", str(workdir / "missing"))
    assert "invalid settings" not in lower.stderr  # any case is accepted; this one fails later, on --rules
