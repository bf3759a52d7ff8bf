"""A pack holds only events that name its decision (issue 14): an event that merely shares the
decision's subject — an agent registered under the decision's id — fails the `decision` check,
even when the pack is resealed with the ledger's own key."""

from gavel.ledger.pack import event_record, inclusion_record, seal
from gavel.ledger.verify import verify_pack
from tests.ledger.test_pack_verify import JWKS, LEDGER_KEY, build_ledger, build_pack, detail, failed


def test_an_event_naming_no_decision_is_not_the_decisions_evidence():
    links, tree = build_ledger()
    pack = build_pack()
    pack["events"].insert(0, event_record(links[1], "agent.registered"))  # event 2: names no decision
    pack["proof"]["inclusion"].insert(0, inclusion_record(2, tree.size, tree.inclusion_proof(1, tree.size)))
    checks = verify_pack(seal(pack, LEDGER_KEY), JWKS)
    assert failed(checks) == {"decision"}
    assert "event 2 names no decision" in detail(checks, "decision")


def test_the_service_shaped_pack_still_verifies():
    assert not failed(verify_pack(build_pack(), JWKS))
