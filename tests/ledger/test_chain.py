"""The event hash chain: hashes, and every way a stored chain can be tampered with."""

import hashlib
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gavel.ledger.canonical import canonical_json
from gavel.ledger.chain import ZERO_HASH, ChainVerdict, Link, event_hash, verify_chain


def build_chain(count: int, start_prev: bytes = ZERO_HASH, first_sequence: int = 1) -> list[Link]:
    links, prev = [], start_prev
    for sequence in range(first_sequence, first_sequence + count):
        payload = canonical_json({"type": "test.event", "n": sequence, "note": "café ✓"})
        digest = event_hash(prev, payload)
        links.append(Link(sequence, payload, prev, digest))
        prev = digest
    return links


def test_event_hash_is_sha256_of_prev_then_utf8_payload():
    payload = '{"type":"x","v":"é"}'
    assert event_hash(ZERO_HASH, payload) == hashlib.sha256(bytes(32) + payload.encode("utf-8")).digest()
    assert bytes(32) == ZERO_HASH


def test_event_hash_refuses_bad_arguments():
    for prev_hash in (b"short", bytes(33), "0" * 32, bytearray(32)):
        with pytest.raises(ValueError, match="^prev_hash must be 32 bytes$"):
            event_hash(prev_hash, "{}")
    with pytest.raises(TypeError, match="^payload_json must be a str$"):
        event_hash(ZERO_HASH, b"{}")


def test_intact_chain_verifies():
    verdict = verify_chain(build_chain(10))
    assert verdict == ChainVerdict(True, 10, 0, verdict.message)
    assert "1–10" in verdict.message


def test_empty_chain_is_trivially_intact_but_not_when_events_are_expected():
    assert verify_chain([]).ok
    verdict = verify_chain([], expected_last_sequence=3)
    assert not verdict.ok and verdict.first_bad_sequence == 1


def test_chain_read_from_the_middle():
    links = build_chain(10)
    verdict = verify_chain(links[4:], expected_first_sequence=5, expected_first_prev=links[3].hash)
    assert verdict.ok and verdict.checked == 6


def test_edited_payload_is_found_at_that_event():
    links = build_chain(10)
    links[6] = replace(links[6], payload_json=links[6].payload_json.replace('"n":7', '"n":70'))
    verdict = verify_chain(links)
    assert (verdict.ok, verdict.first_bad_sequence, verdict.checked) == (False, 7, 6)
    assert verdict.message == "event 7: hash does not match its payload"


def test_edited_hash_is_found_at_that_event():
    links = build_chain(10)
    links[6] = replace(links[6], hash=bytes(32))
    verdict = verify_chain(links)
    assert not verdict.ok and verdict.first_bad_sequence == 7
    assert "hash does not match its payload" in verdict.message


def test_rewritten_event_with_recomputed_hash_breaks_the_next_link():
    links = build_chain(10)
    forged_payload = links[6].payload_json.replace('"n":7', '"n":70')
    links[6] = replace(links[6], payload_json=forged_payload, hash=event_hash(links[6].prev_hash, forged_payload))
    verdict = verify_chain(links)
    assert not verdict.ok and verdict.first_bad_sequence == 8
    assert verdict.message == "event 8: prev_hash does not match the hash of event 7"


def test_deleted_event_is_named():
    links = build_chain(10)
    del links[4]
    verdict = verify_chain(links)
    assert not verdict.ok and verdict.first_bad_sequence == 5
    assert "event 6 comes where event 5 should" in verdict.message and "event 5 is missing" in verdict.message


def test_deleted_run_of_events_is_named():
    links = build_chain(10)
    del links[3:6]
    verdict = verify_chain(links)
    assert verdict.first_bad_sequence == 4 and "events 4–6 are missing" in verdict.message


def test_deleted_event_with_renumbered_successors_still_breaks():
    links = build_chain(10)
    del links[4]
    links = [replace(link, sequence=i) for i, link in enumerate(links, start=1)]
    verdict = verify_chain(links)
    assert not verdict.ok and verdict.first_bad_sequence == 5
    assert "prev_hash does not match the hash of event 4" in verdict.message


def test_reordered_events_are_found():
    links = build_chain(10)
    links[3], links[4] = links[4], links[3]
    verdict = verify_chain(links)
    assert not verdict.ok and verdict.first_bad_sequence == 4
    assert "out of order" in verdict.message


def test_event_moved_back_is_out_of_order():
    links = build_chain(10)
    moved = links.pop(2)
    links.insert(5, moved)
    verdict = verify_chain(links)
    assert not verdict.ok and verdict.first_bad_sequence == 3


def test_duplicate_event_is_found():
    links = build_chain(10)
    links.insert(5, links[4])
    verdict = verify_chain(links)
    assert not verdict.ok and verdict.first_bad_sequence == 5
    assert verdict.message == "event 5 appears twice"


def test_truncated_head_is_found():
    verdict = verify_chain(build_chain(10)[3:])
    assert not verdict.ok and verdict.first_bad_sequence == 1
    assert "should start at event 1 but starts at event 4" in verdict.message


def test_truncated_tail_is_found_when_the_end_is_known():
    links = build_chain(10)
    assert verify_chain(links[:7]).ok  # the links alone cannot tell
    verdict = verify_chain(links[:7], expected_last_sequence=10)
    assert not verdict.ok and verdict.first_bad_sequence == 8 and verdict.checked == 7
    assert "events 8–10 are missing" in verdict.message


def test_chain_longer_than_expected_is_refused():
    verdict = verify_chain(build_chain(10), expected_last_sequence=9)
    assert not verdict.ok and verdict.first_bad_sequence == 10


def test_first_event_must_start_from_the_expected_hash():
    links = build_chain(3, start_prev=b"\x01" * 32)
    verdict = verify_chain(links)
    assert not verdict.ok and verdict.first_bad_sequence == 1
    assert "prev_hash" in verdict.message


def test_malformed_links_fail_closed():
    links = build_chain(3)
    assert not verify_chain([links[0], replace(links[1], hash=b"short")]).ok
    assert not verify_chain([links[0], replace(links[1], sequence="2")]).ok
    assert not verify_chain([links[0], "not a link"]).ok
    assert not verify_chain([replace(links[0], payload_json="\ud800")]).ok


@given(count=st.integers(1, 30), data=st.data())
def test_any_single_edit_is_caught_at_or_before_the_edited_event(count, data):
    links = build_chain(count)
    position = data.draw(st.integers(0, count - 1))
    field = data.draw(st.sampled_from(["payload_json", "prev_hash", "hash"]))
    original = links[position]
    if field == "payload_json":
        links[position] = replace(original, payload_json=original.payload_json + " ")
    else:
        links[position] = replace(original, **{field: bytes(b ^ 1 for b in getattr(original, field))})
    verdict = verify_chain(links)
    assert not verdict.ok
    # an edited payload or prev_hash breaks that event's own link, an edited hash its own payload check
    assert verdict.first_bad_sequence == original.sequence


# -- each verdict in full: which event, how many links held, and what is said ----------------------


def test_a_chain_missing_only_its_last_event_is_refused_when_the_end_is_known():
    links = build_chain(10)
    assert verify_chain(links[:9], expected_last_sequence=10) == ChainVerdict(
        False, 9, 10, "the chain ends at event 9 but should run to event 10: event 10 is missing")
    middle = verify_chain(links[4:9], expected_first_sequence=5, expected_first_prev=links[3].hash,
                          expected_last_sequence=10)
    assert (middle.ok, middle.checked, middle.first_bad_sequence) == (False, 5, 10)


def test_a_chain_that_ends_exactly_where_expected_is_intact():
    assert verify_chain(build_chain(10), expected_last_sequence=10) == ChainVerdict(
        True, 10, 0, "events 1–10 form an unbroken chain")
    links = build_chain(10)
    assert verify_chain(links[4:], expected_first_sequence=5, expected_first_prev=links[3].hash,
                        expected_last_sequence=10) == ChainVerdict(True, 6, 0, "events 5–10 form an unbroken chain")


def test_verdicts_on_empty_chains():
    assert verify_chain([]) == ChainVerdict(True, 0, 0, "no events to check")
    assert verify_chain([], expected_last_sequence=3) == ChainVerdict(
        False, 0, 1, "the chain is empty but should run to event 3: events 1–3 are missing")
    assert verify_chain([], expected_last_sequence=0) == ChainVerdict(True, 0, 0, "no events to check")


def test_verdicts_on_chains_running_past_their_end():
    assert verify_chain(build_chain(10), expected_last_sequence=9) == ChainVerdict(
        False, 9, 10, "event 10: the chain should end at event 9")
    assert verify_chain(build_chain(1), expected_last_sequence=0) == ChainVerdict(
        False, 0, 1, "event 1: the chain should end at event 0")


def test_verdicts_on_moved_and_repeated_events():
    links = build_chain(6)
    assert verify_chain([*links[:3], links[2], *links[3:]]) == ChainVerdict(False, 3, 3, "event 3 appears twice")
    assert verify_chain([*links[:3], links[1], *links[3:]]) == ChainVerdict(
        False, 3, 2, "event 2 comes after event 3: the events are out of order")
    assert verify_chain([*links[:2], *links[3:]]) == ChainVerdict(
        False, 2, 3, "event 4 comes where event 3 should: event 3 is missing, or the events are out of order")
    assert verify_chain(links[2:]) == ChainVerdict(
        False, 0, 1, "the chain should start at event 1 but starts at event 3")
    assert verify_chain(links[2:], expected_first_sequence=4) == ChainVerdict(
        False, 0, 4, "the chain should start at event 4 but starts at event 3")  # earlier than expected
    assert verify_chain(links[:2] + links[5:]) == ChainVerdict(
        False, 2, 3, "event 6 comes where event 3 should: events 3–5 are missing, or the events are out of order")


def test_verdicts_on_malformed_links():
    links = build_chain(3)
    wrong_size = "event 2: prev_hash and hash must be 32 bytes each"
    cases = [
        ("not a link", "event 2: not a chain link"),
        (replace(links[1], sequence=True), "event 2: its sequence is not a whole number"),
        (replace(links[1], sequence="2"), "event 2: its sequence is not a whole number"),
        (replace(links[1], sequence=2.0), "event 2: its sequence is not a whole number"),
        (replace(links[1], hash=b"short"), wrong_size),
        (replace(links[1], prev_hash=b"short"), wrong_size),
        (replace(links[1], hash=bytearray(links[1].hash)), wrong_size),
        (replace(links[1], payload_json=links[1].payload_json.encode()), "event 2: its payload is not text"),
        (replace(links[1], payload_json="\ud800"), "event 2: its payload is not valid Unicode text"),
    ]
    for bad, message in cases:
        assert verify_chain([links[0], bad, links[2]]) == ChainVerdict(False, 1, 2, message), bad


def test_a_bool_sequence_is_not_event_one():
    first = build_chain(1)[0]
    assert verify_chain([replace(first, sequence=True)]) == ChainVerdict(
        False, 0, 1, "event 1: its sequence is not a whole number")


def test_the_first_link_must_start_from_the_expected_hash():
    links = build_chain(3)
    assert verify_chain(links, expected_first_prev=b"\x01" * 32) == ChainVerdict(
        False, 0, 1, "event 1: prev_hash is not the hash the chain should start from")
    assert verify_chain(links[1:], expected_first_sequence=2, expected_first_prev=ZERO_HASH) == ChainVerdict(
        False, 0, 2, "event 2: prev_hash is not the hash the chain should start from")
