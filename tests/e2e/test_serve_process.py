"""`gavel serve` as a real process: --dev keys, drain on SIGTERM, admin CLI on the same store."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gavel.v1 import agent_pb2, agent_pb2_grpc, common_pb2, decision_pb2, decision_pb2_grpc

GAVEL = [sys.executable, "-m", "gavel.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAVEL_")}
    env.update(GAVEL_DATA_DIR=str(tmp_path / "data"), GAVEL_RULES=str(tmp_path / "rules"),
               GAVEL_HTTP_ADDR="127.0.0.1:0")
    return env


def wait_serving(addr: str, proc: subprocess.Popen, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "exited"
        try:
            with grpc.insecure_channel(addr) as ch:
                reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.RpcError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become SERVING")


def test_serve_dev_decides_and_drains_on_sigterm(workdir: Path) -> None:
    addr = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen([*GAVEL, "serve", "--dev", "--grpc-addr", addr], env=env_for(workdir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        keys = {}
        for _ in range(3):
            line = proc.stdout.readline()
            m = re.search(r"(test|live) key: (\S+)", line)
            if m:
                keys[m.group(1)] = m.group(2)
        assert keys["test"].startswith("sk_test_") and keys["live"].startswith("sk_live_")
        wait_serving(addr, proc)
        md = (("authorization", f"Bearer {keys['test']}"),)
        with grpc.insecure_channel(addr) as ch:
            agents = agent_pb2_grpc.AgentServiceStub(ch)
            agents.RegisterAgent(agent_pb2.RegisterAgentRequest(agent_id="bot", daily_limit="1000"), metadata=md)
            d = decision_pb2_grpc.DecisionServiceStub(ch).Decide(decision_pb2.DecideRequest(
                action=common_pb2.Action(type="payment", amount="10", currency="EUR"),
                agent=decision_pb2.AgentRef(id="bot")), metadata=md)
            assert d.outcome == common_pb2.OUTCOME_ALLOW
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert "draining" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    # the decision was durable: a second start sees it, and --dev revoked the first dev keys
    proc2 = subprocess.Popen([*GAVEL, "serve", "--dev", "--grpc-addr", addr], env=env_for(workdir),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_serving(addr, proc2)
        with grpc.insecure_channel(addr) as ch:
            with pytest.raises(grpc.RpcError) as info:
                decision_pb2_grpc.DecisionServiceStub(ch).GetDecision(
                    decision_pb2.GetDecisionRequest(decision_id=d.decision_id), metadata=md)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        proc2.send_signal(signal.SIGINT)
        assert proc2.wait(timeout=20) == 0


def test_admin_cli_works_without_a_server_on_an_empty_database(workdir: Path) -> None:
    env = env_for(workdir)
    out = subprocess.run([*GAVEL, "tenants", "create", "Acme Corp"], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "acme-corp"
    out = subprocess.run([*GAVEL, "keys", "create", "--tenant", "Acme Corp", "--env", "live", "--roles",
                          "agent,auditor", "--principal", "bot@acme"], env=env, capture_output=True, text=True)
    assert out.returncode == 0
    assert re.fullmatch(r"sk_live_k[a-z2-7]{15}_[A-Za-z0-9_-]{43}\n", out.stdout), out.stdout
    out = subprocess.run([*GAVEL, "keys", "create", "--tenant", "nobody", "--env", "test"], env=env,
                         capture_output=True, text=True)
    assert out.returncode != 0 and "no tenant `nobody`" in out.stderr and out.stdout == ""
    out = subprocess.run([*GAVEL, "keys", "rotate-signing"], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and "1 retired key" in out.stdout


def test_serve_refuses_broken_rules_with_diagnostics(workdir: Path) -> None:
    (workdir / "rules" / "bad.rules").write_text("package bad\nrule r allow when action.amout > 1\n")
    out = subprocess.run([*GAVEL, "serve", "--grpc-addr", f"127.0.0.1:{free_port()}"], env=env_for(workdir),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "bad.rules:2:19: error[E101]: unknown path `action.amout`" in out.stderr
    assert "Traceback" not in out.stderr


def test_serve_rejects_invalid_settings(workdir: Path) -> None:
    out = subprocess.run([*GAVEL, "serve", "--grpc-addr", "nonsense"], env=env_for(workdir), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0 and "grpc_addr" in out.stderr and "Traceback" not in out.stderr
