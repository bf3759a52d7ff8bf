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
    with pytest.raises(ValueError):
        event_hash(b"short", "{}")
    with pytest.raises(TypeError):
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
    assert verdict.first_bad_sequence in (original.sequence, original.sequence + 1)
    assert verdict.first_bad_sequence == original.sequence or field == "hash"
