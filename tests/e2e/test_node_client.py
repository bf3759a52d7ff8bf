"""A client in a second language (Node.js, @grpc/grpc-js + @grpc/proto-loader on proto/)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "node"
PROTO = Path(__file__).resolve().parents[2] / "proto"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
async def test_node_client_decides_consumes_and_gets_typed_errors(harness) -> None:
    if not (HERE / "node_modules" / "@grpc" / "grpc-js").exists():
        pytest.fail("run `npm install --prefix tests/e2e/node` (the test command .ci/test does it)")
    proc = await asyncio.create_subprocess_exec(
        "node", str(HERE / "client.js"), harness.addr, harness.keys["agent"], str(PROTO),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    result = json.loads(out)
    assert result == {
        "outcome": "OUTCOME_ALLOW", "reason_code": "payment.small", "correlation_id": "from-node", "has_token": True,
        "jwks_keys": 1, "consumed": True, "replay_code": 6, "replay_reason_in_details": True, "bad_code": 3,
    }
