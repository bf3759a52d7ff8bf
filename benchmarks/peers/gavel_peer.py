"""Gavel itself: the in-process engine (`Engine.decide_at`) and the `Decide` RPC's messages."""

from __future__ import annotations

from .policy import FIXED_NOW, PeerPolicy
from .rules_text import sources


class GavelPeer:
    """The common request dict is what `decide_at` takes: there is no conversion to time."""

    name = "gavel"

    def __init__(self, model: PeerPolicy):
        self.sources = sources(model)
        self.units = model.n_rules  # `rule` declarations

    def load(self) -> None:
        # What `Engine.from_sources` does, minus its cache of compiled bundles (keyed by content
        # hash), so that every load compiles: parse, check, lower and build the decision tree.
        from gavel.api import Engine, gc_paused

        with gc_paused():
            self.engine = Engine.from_texts(self.sources)

    def decide(self, request: dict) -> str:
        return self.engine.decide_at(request, None, FIXED_NOW).outcome

    @staticmethod
    def version() -> str:
        from importlib.metadata import version

        return f"gavel {version('gavel')}"


def decide_request(request: dict):
    """The common request dict → `DecideRequest` (for Gavel's `Decide` RPC)."""
    from gavel.v1 import common_pb2, decision_pb2

    action = request["action"]
    return decision_pb2.DecideRequest(
        action=common_pb2.Action(type=action["type"], amount=action.get("amount", ""),
                                 currency=action.get("currency", ""), jurisdiction=action.get("jurisdiction", "")),
        agent=decision_pb2.AgentRef(id=request["agent"]["id"]),
    )


def outcome_names() -> dict[int, str]:
    from gavel.v1 import common_pb2

    return {common_pb2.OUTCOME_ALLOW: "allow", common_pb2.OUTCOME_DENY: "deny",
            common_pb2.OUTCOME_REQUIRE_APPROVAL: "require_approval"}
