"""The event hash chain: each event's hash covers the previous event's hash and its own payload.

An event is stored with its sequence (1, 2, 3, … per tenant and environment), its canonical JSON
payload, `prev_hash` and `hash = SHA-256(prev_hash ‖ UTF-8 payload)`; the first event's
`prev_hash` is 32 zero bytes. Editing a payload breaks that event's hash; rewriting a hash to
match breaks the next event's `prev_hash`; deleting, reordering or repeating rows breaks the
sequence. `verify_chain` reads the links in order and stops at the first break, saying in plain
words where and what it is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

HASH_LENGTH = 32
ZERO_HASH = bytes(HASH_LENGTH)


def event_hash(prev_hash: bytes, payload_json: str) -> bytes:
    """Return SHA-256 over `prev_hash` followed by the UTF-8 bytes of `payload_json`."""
    if not isinstance(prev_hash, bytes) or len(prev_hash) != HASH_LENGTH:
        raise ValueError(f"prev_hash must be {HASH_LENGTH} bytes")
    if not isinstance(payload_json, str):
        raise TypeError("payload_json must be a str")
    return hashlib.sha256(prev_hash + payload_json.encode("utf-8")).digest()


@dataclass(frozen=True)
class Link:
    """One stored event, as far as the chain is concerned."""

    sequence: int
    payload_json: str
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True)
class ChainVerdict:
    """The outcome of `verify_chain`.

    `checked` counts the links that held before the first break (all of them when `ok`);
    `first_bad_sequence` is the sequence where the chain first breaks, 0 when `ok`.
    """

    ok: bool
    checked: int
    first_bad_sequence: int
    message: str


def verify_chain(
    links: Iterable[Link],
    *,
    expected_first_sequence: int = 1,
    expected_first_prev: bytes = ZERO_HASH,
    expected_last_sequence: int | None = None,
) -> ChainVerdict:
    """Check that `links`, in the order given, form one unbroken chain.

    Start from `expected_first_sequence`/`expected_first_prev` (the defaults describe a chain
    read from its first event). When `expected_last_sequence` is given (e.g. a signed tree
    size), a chain that stops early or runs past it is broken too: that is how a truncated tail
    shows, since the links alone cannot tell.
    """
    expected_sequence = expected_first_sequence
    expected_prev = expected_first_prev
    previous_sequence: int | None = None
    checked = 0
    for link in links:
        problem = _link_problem(link, expected_sequence, expected_prev, previous_sequence, expected_last_sequence)
        if problem is not None:
            bad_sequence, message = problem
            return ChainVerdict(False, checked, bad_sequence, message)
        checked += 1
        previous_sequence = link.sequence
        expected_sequence = link.sequence + 1
        expected_prev = link.hash
    if expected_last_sequence is not None and expected_sequence <= expected_last_sequence:
        missing = _span(expected_sequence, expected_last_sequence)
        ends = f"the chain ends at event {previous_sequence}" if previous_sequence else "the chain is empty"
        return ChainVerdict(
            False, checked, expected_sequence, f"{ends} but should run to event {expected_last_sequence}: {missing}"
        )
    if checked == 0:
        return ChainVerdict(True, 0, 0, "no events to check")
    first = expected_first_sequence
    return ChainVerdict(True, checked, 0, f"events {first}–{previous_sequence} form an unbroken chain")


def _link_problem(
    link: Link,
    expected_sequence: int,
    expected_prev: bytes,
    previous_sequence: int | None,
    expected_last_sequence: int | None,
) -> tuple[int, str] | None:
    if not isinstance(link, Link):
        return expected_sequence, f"event {expected_sequence}: not a chain link"
    sequence = link.sequence
    if isinstance(sequence, bool) or not isinstance(sequence, int):
        return expected_sequence, f"event {expected_sequence}: its sequence is not a whole number"
    if sequence != expected_sequence:
        return _sequence_problem(sequence, expected_sequence, previous_sequence)
    if expected_last_sequence is not None and sequence > expected_last_sequence:
        return sequence, f"event {sequence}: the chain should end at event {expected_last_sequence}"
    if not _is_hash(link.prev_hash) or not _is_hash(link.hash):
        return sequence, f"event {sequence}: prev_hash and hash must be {HASH_LENGTH} bytes each"
    if link.prev_hash != expected_prev:
        if previous_sequence is None:
            return sequence, f"event {sequence}: prev_hash is not the hash the chain should start from"
        return sequence, f"event {sequence}: prev_hash does not match the hash of event {previous_sequence}"
    if not isinstance(link.payload_json, str):
        return sequence, f"event {sequence}: its payload is not text"
    try:
        recomputed = event_hash(link.prev_hash, link.payload_json)
    except UnicodeEncodeError:
        return sequence, f"event {sequence}: its payload is not valid Unicode text"
    if recomputed != link.hash:
        return sequence, f"event {sequence}: hash does not match its payload"
    return None


def _sequence_problem(sequence: int, expected: int, previous: int | None) -> tuple[int, str]:
    if previous is not None and sequence == previous:
        return sequence, f"event {sequence} appears twice"
    if previous is not None and sequence < expected:
        return sequence, f"event {sequence} comes after event {previous}: the events are out of order"
    if previous is None:
        return expected, f"the chain should start at event {expected} but starts at event {sequence}"
    return expected, (
        f"event {sequence} comes where event {expected} should: "
        f"{_span(expected, sequence - 1)}, or the events are out of order"
    )


def _span(first: int, last: int) -> str:
    return f"event {first} is missing" if first == last else f"events {first}–{last} are missing"


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_LENGTH
