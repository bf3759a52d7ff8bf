"""The README's five-minute tour as a script: an agent runtime asking Gavel before it acts.

    .venv/bin/python docs/examples/tour.py sk_test_…   [ADDR]

Uses the example policies in rules/ (refunds.rules): registers an agent with a daily budget,
asks for a small refund (allowed, with a single-use decision token), burns the token at the
tool boundary, reports the execution, and asks for a larger refund (needs a human).
"""

from __future__ import annotations

import json
import sys

import grpc

from gavel.v1 import agent_pb2, agent_pb2_grpc, common_pb2, decision_pb2, decision_pb2_grpc


def main(key: str, addr: str = "127.0.0.1:50051") -> None:
    metadata = (("authorization", f"Bearer {key}"),)
    with grpc.insecure_channel(addr) as channel:
        agents = agent_pb2_grpc.AgentServiceStub(channel)
        decisions = decision_pb2_grpc.DecisionServiceStub(channel)

        # 1. Register the agent with an owner and a daily budget (the rules read these as facts).
        try:
            agents.RegisterAgent(agent_pb2.RegisterAgentRequest(
                agent_id="support-refund-agent", name="Support refunds", owner="support-ops",
                allowed_actions=["refund_approve"], daily_limit="2000.00", monthly_limit="20000.00",
            ), metadata=metadata)
        except grpc.RpcError as err:
            if "already registered" not in (err.details() or ""):
                raise

        # 2. May I refund 120.00 USD for order ord_42?
        request = decision_pb2.DecideRequest(
            action=common_pb2.Action(type="refund_approve", amount="120.00", currency="USD"),
            agent=decision_pb2.AgentRef(id="support-refund-agent"),
            rationale="customer received a damaged item",
        )
        request.context.update({"order_id": "ord_42", "customer_id": "cus_7"})
        d = decisions.Decide(request, metadata=metadata)
        print("outcome:", common_pb2.Outcome.Name(d.outcome), d.reason_code)
        print("explain:", d.explain.summary)

        # 3. At the tool boundary: burn the single-use token (a replay would be refused).
        burned = decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=d.decision_token),
                                        metadata=metadata)
        print("token valid:", burned.valid, "for", burned.decision_id)

        # 4. Report what actually happened; Gavel reconciles it against what it allowed.
        report = decisions.ReportExecution(decision_pb2.ReportExecutionRequest(
            decision_id=d.decision_id, decision_token=d.decision_token,
            status=decision_pb2.EXECUTION_STATUS_SUCCEEDED, amount="120.00", currency="USD",
            external_transaction_id="re_3PqX",
        ), metadata=metadata)
        print("reconciliation:", decision_pb2.ReconciliationStatus.Name(report.reconciliation.status))

        # 5. A larger refund needs a finance manager: no token until a human approves.
        request.action.amount = "5000.00"
        d = decisions.Decide(request, metadata=metadata)
        print("outcome:", common_pb2.Outcome.Name(d.outcome), d.reason_code, "→ role", d.approval.role)
        print(json.dumps(json.loads(d.explain.json)["next_steps"]))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: tour.py API_KEY [ADDR]")
    main(*sys.argv[1:3])
