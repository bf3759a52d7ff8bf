"""The contract (proto comments) and the code agree (issue 14), over a real server:
ReportExecutionRequest.executed_at is optional and defaults to when the report arrived; an
agent id takes exactly the alphabet agent.proto states; DecideStream's per-stream limit and a
CreateApiKey replay are described as they behave."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import timestamp_pb2

from gavel.app.requests import IDENTIFIER
from gavel.v1 import agent_pb2, decision_pb2
from tests.e2e.helpers import expect_error, request

PROTO = Path(__file__).resolve().parents[2] / "proto" / "gavel" / "v1"


async def report(h, d: decision_pb2.Decision, **kw) -> decision_pb2.ExecutionReport:
    return await h.decisions.ReportExecution(decision_pb2.ReportExecutionRequest(
        decision_id=d.decision_id, decision_token=d.decision_token, status=decision_pb2.EXECUTION_STATUS_SUCCEEDED,
        amount="90.00", currency="USD", **kw), metadata=h.md("agent"))


async def test_executed_at_defaults_to_when_the_report_arrived(harness) -> None:
    d = await harness.decisions.Decide(request(amount="90"), metadata=harness.md("agent"))
    before = datetime.now(UTC)
    r = await report(harness, d)
    after = datetime.now(UTC)
    assert before - timedelta(seconds=1) <= r.executed_at.ToDatetime(tzinfo=UTC) <= after + timedelta(seconds=1)

    d = await harness.decisions.Decide(request(amount="90"), metadata=harness.md("agent"))
    given = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(given)
    r = await report(harness, d, executed_at=stamp)
    assert r.executed_at.ToDatetime(tzinfo=UTC) == given


@pytest.mark.parametrize("agent_id", ["a", "svc:payments/eu@acme.example", "Bot_1.v-2", "x" * 128])
async def test_agent_ids_take_the_alphabet_agent_proto_states(harness, agent_id: str) -> None:
    made = await harness.agents.RegisterAgent(agent_pb2.RegisterAgentRequest(agent_id=agent_id, daily_limit="1000"),
                                              metadata=harness.md())
    assert made.agent_id == agent_id
    d = await harness.decisions.Decide(request(amount="90", agent=agent_id), metadata=harness.md("agent"))
    assert d.reason_code == "payment.small"


@pytest.mark.parametrize("agent_id", ["-bot", ".bot", "bot 1", "bøt", "bot#1", "x" * 129])
async def test_other_agent_ids_are_refused(harness, agent_id: str) -> None:
    fields = await expect_error(harness.agents.RegisterAgent(agent_pb2.RegisterAgentRequest(agent_id=agent_id),
                                                             metadata=harness.md()),
                                grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")
    assert fields == ["agent_id"]


def test_the_proto_comments_say_what_the_code_does() -> None:
    agent = (PROTO / "agent.proto").read_text()
    assert '".", "_", ":", "@", "/", "-"' in agent and "starting with a letter or digit" in agent
    assert IDENTIFIER.pattern == r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}"  # what that sentence describes
    decision = (PROTO / "decision.proto").read_text()
    assert "There is no limit on decisions per stream" not in decision
    assert "GAVEL_MAX_DECISIONS_PER_STREAM" in decision and "STREAM_DECISIONS_EXCEEDED" in decision
    assert "// Required. When the action was executed." not in decision
    admin = (PROTO / "admin.proto").read_text()
    assert "secret included" not in admin and "`secret` is empty on a replay" in admin
