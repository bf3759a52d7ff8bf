"""Kill -9 of `gavel serve` in the middle of a decision load, then restart: every decision a
client got an answer for is readable and in the ledger, every issued token is consumable once,
and the ledger verifies."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
from pathlib import Path

import grpc
import pytest

from gavel.v1 import decision_pb2, decision_pb2_grpc, evidence_pb2, evidence_pb2_grpc
from tests.e2e.helpers import request
from tests.e2e.test_serve_process import GAVEL, env_for, free_port, wait_serving


def start(workdir: Path, addr: str) -> subprocess.Popen:
    return subprocess.Popen([*GAVEL, "serve", "--grpc-addr", addr], env=env_for(workdir),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.skipif(bool(os.environ.get("GAVEL_TEST_DATABASE_URL")), reason="the SQLite crash case")
async def test_kill_minus_nine_loses_nothing_acknowledged(workdir: Path) -> None:
    env = env_for(workdir)
    subprocess.run([*GAVEL, "tenants", "create", "acme"], env=env, check=True, capture_output=True)
    key = subprocess.run([*GAVEL, "keys", "create", "--tenant", "acme", "--env", "test", "--roles", "agent,auditor"],
                         env=env, check=True, capture_output=True, text=True).stdout.strip()
    assert re.fullmatch(r"sk_test_\S+", key)
    md = (("authorization", f"Bearer {key}"),)
    addr = f"127.0.0.1:{free_port()}"
    server = start(workdir, addr)
    await asyncio.to_thread(wait_serving, addr, server)
    acknowledged: list[decision_pb2.Decision] = []

    async def load(channel: grpc.aio.Channel) -> None:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        while True:
            try:
                acknowledged.append(await stub.Decide(request(amount="12.50"), metadata=md, timeout=5))
            except grpc.aio.AioRpcError:
                return  # the server died under us: this request was never acknowledged

    async with grpc.aio.insecure_channel(addr) as channel:
        workers = [asyncio.create_task(load(channel)) for _ in range(8)]
        while len(acknowledged) < 150:
            await asyncio.sleep(0.02)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        await asyncio.wait_for(asyncio.gather(*workers), 30)
    assert len(acknowledged) >= 150

    restarted = start(workdir, addr)
    try:
        await asyncio.to_thread(wait_serving, addr, restarted)
        async with grpc.aio.insecure_channel(addr) as channel:
            decisions = decision_pb2_grpc.DecisionServiceStub(channel)
            evidence = evidence_pb2_grpc.EvidenceServiceStub(channel)
            for d in acknowledged:
                got = await decisions.GetDecision(decision_pb2.GetDecisionRequest(decision_id=d.decision_id),
                                                  metadata=md)
                assert got.decision_id == d.decision_id and got.evidence_event_id == d.evidence_event_id
            recorded = set()
            async for e in evidence.StreamEvents(evidence_pb2.StreamEventsRequest(from_sequence=1), metadata=md):
                recorded.add(json.loads(e.payload_json).get("decision_id"))
                if {d.decision_id for d in acknowledged} <= recorded:
                    break
            verdict = await evidence.VerifyLedger(evidence_pb2.VerifyLedgerRequest(), metadata=md)
            assert verdict.ok, verdict.message
            for d in acknowledged[:40]:  # each issued token burns exactly once
                r = await decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=d.decision_token),
                                                 metadata=md)
                assert r.valid
                with pytest.raises(grpc.aio.AioRpcError) as again:
                    await decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=d.decision_token),
                                                 metadata=md)
                assert again.value.code() == grpc.StatusCode.ALREADY_EXISTS
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(20)
