"""The two servers of the gRPC comparison: `gavel serve` and the Cerbos binary from npm.

Both run as subprocesses on loopback with a temporary directory each; both are stopped with
SIGTERM (then SIGKILL) by their process id.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
ROOT = BENCH.parent
GAVEL_SERVING = re.compile(r"serving gRPC on [^\s:]+:(\d+)")


def cerbos_binary() -> str | None:
    """The native binary the npm package `cerbos` installs (`npm install --prefix benchmarks`)."""
    native = BENCH / "node_modules" / "@cerbos" / "cerbos-linux-x64" / "cerbos-linux-x64"
    if native.exists():
        return str(native)
    shim = BENCH / "node_modules" / ".bin" / "cerbos"
    if shim.exists():
        return str(shim)
    return shutil.which("cerbos")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAVEL_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["CERBOS_NO_TELEMETRY"] = "1"
    return env


class Server:
    def __init__(self, name: str, argv: list[str], log_path: Path):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=_env(), cwd=ROOT,
                                     start_new_session=True)
        self.port = 0
        self.ready_s = float("nan")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def fail(self, why: str) -> SystemExit:
        return SystemExit(f"{self.name} {why}:\n{self.log()[-4000:]}")

    def cpu_seconds(self) -> float:
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def _wait_grpc(server: Server, port: int, timeout: float) -> None:
    import grpc

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise server.fail("exited")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch, contextlib.suppress(grpc.FutureTimeoutError):
            grpc.channel_ready_future(ch).result(timeout=0.5)
            return
    raise server.fail(f"did not listen on {port} within {timeout:g} s")


def start_cerbos(policy_dir: Path, workdir: Path, timeout: float = 180.0) -> Server:
    binary = cerbos_binary()
    if binary is None:
        raise FileNotFoundError("no cerbos binary: run `npm install --prefix benchmarks`")
    port = free_port()
    argv = [binary, "server", "--log-level=warn",
            f"--set=server.grpcListenAddr=127.0.0.1:{port}", f"--set=server.httpListenAddr=127.0.0.1:{free_port()}",
            "--set=storage.driver=disk", f"--set=storage.disk.directory={policy_dir}",
            "--set=storage.disk.watchForChanges=false", "--set=telemetry.disabled=true"]
    server = Server("cerbos", argv, workdir / f"cerbos-{policy_dir.name}.log")
    try:
        _wait_grpc(server, port, timeout)
    except BaseException:
        server.stop()
        raise
    server.port = port
    server.ready_s = time.perf_counter() - server.started
    return server


def gavel_cmd() -> list[str]:
    return [sys.executable, "-m", "gavel.cli"]


def seed_gavel(data_dir: Path) -> str:
    """A tenant and an `agent` key via the CLI on the server's data dir; returns the key."""
    def run(*args: str) -> str:
        out = subprocess.run([*gavel_cmd(), *args, "--data-dir", str(data_dir)], capture_output=True, text=True,
                             env=_env(), cwd=ROOT, check=False)
        if out.returncode != 0:
            raise SystemExit(f"gavel {' '.join(args)} failed:\n{out.stdout}{out.stderr}")
        return out.stdout.strip().splitlines()[-1]

    tenant = run("tenants", "create", "peers-bench")
    return run("keys", "create", "--tenant", tenant, "--env", "test", "--roles", "agent", "--principal", "bench")


def start_gavel(rules_dir: Path, data_dir: Path, workdir: Path, timeout: float = 300.0) -> Server:
    argv = [*gavel_cmd(), "serve", "--data-dir", str(data_dir), "--rules", str(rules_dir),
            "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--rate-limit-per-minute", "0"]
    server = Server("gavel", argv, workdir / f"gavel-{rules_dir.name}.log")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = GAVEL_SERVING.search(server.log())
        if m:
            server.port = int(m.group(1))
            server.ready_s = time.perf_counter() - server.started
            return server
        if server.proc.poll() is not None:
            server.stop()
            raise server.fail("exited")
        time.sleep(0.05)
    server.stop()
    raise server.fail(f"did not start within {timeout:g} s")
