"""Offline verification of an evidence pack: needs only the pack and the ledger's public keys.

The checks, each reported on its own (a failed check does not hide the others):

- `format`: the pack says it is a `gavel.evidence-pack/1`.
- `fingerprint`: SHA-256 of the canonical pack without `fingerprint`/`signature` matches.
- `signature`: `signature.alg` is EdDSA and `signature.sig` is the Ed25519 signature of the
  canonical pack without `signature`, by the JWKS key whose kid is `signature.kid`. Keys come
  only from the JWKS the caller passes, never from the pack.
- `events`: every event's `hash` is SHA-256(prev_hash ‖ payload_json), its `payload_json` is
  canonical JSON, events are listed in increasing sequence, event 1 starts from 32 zero bytes,
  and where two listed events are consecutive the later one's `prev_hash` is the earlier's hash.
- `decision`: every event's `type` is its payload's `type`, and every payload names the pack's
  decision (`decision_id`): an event about something else that shares the decision's subject
  (an agent registered under the decision's id, say) is not part of the decision's evidence.
- `decision.recorded`: at least one `decision.recorded` event records this decision; if its
  payload carries an `outcome` (at its top level or in its `data` object), it is the pack's
  `decision.outcome`.
- `checkpoint`: `proof.checkpoint.note` is a signed note with a valid signature under the key
  name `origin` by the JWKS key `proof.checkpoint.key_id`, and its body (a tlog-checkpoint)
  has the same origin, tree size and root hash as `proof.checkpoint`.
- `inclusion`: every event has an inclusion proof with `leaf_index` = sequence − 1 and
  `tree_size` = the checkpoint's, whose audit path leads from the event's hash to the signed
  root (RFC 9162 §2.1.3.2).

Encodings: event hashes and audit-path nodes are lower-case hex; the checkpoint root is
standard base64; the pack signature is unpadded base64url.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from gavel.crypto.keys import PublicKey, b64url_decode
from gavel.ledger.canonical import JsonNumber, canonical_json, strict_loads
from gavel.ledger.chain import ZERO_HASH, Link, verify_chain
from gavel.ledger.checkpoint import NoteError, open_note, parse_body
from gavel.ledger.merkle import verify_inclusion
from gavel.ledger.pack import PACK_FORMAT, SIGNATURE_ALGORITHM, pack_fingerprint, signed_bytes

DECISION_RECORDED = "decision.recorded"
MAX_LISTED_PROBLEMS = 3

_HEX_HASH = re.compile("[0-9a-f]{64}")


@dataclass(frozen=True)
class Check:
    """One thing the verifier checked, whether it held, and what it found."""

    name: str
    ok: bool
    detail: str


def all_ok(checks: Iterable[Check]) -> bool:
    """Return whether there is at least one check and every check held."""
    checks = list(checks)
    return bool(checks) and all(check.ok for check in checks)


def load_pack(text: str) -> dict:
    """Parse a pack's JSON text strictly (no duplicate names, no NaN); ValueError if unusable."""
    try:
        value = _strict_json(text)
    except ValueError as exc:
        raise ValueError(f"the pack is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("the pack is not a JSON object")
    return value


def load_jwks(text: str) -> dict:
    """Parse a JWKS (or a single JWK, wrapped into one); ValueError saying what is wrong."""
    try:
        value = _strict_json(text)
    except ValueError as exc:
        raise ValueError(f"the JWKS is not valid JSON: {exc}") from None
    return as_jwks(value)


def as_jwks(value: object) -> dict:
    """Return `value` as a JWKS document `{"keys": [...]}`, or raise ValueError saying why not."""
    if isinstance(value, dict) and "kty" in value and "keys" not in value:
        value = {"keys": [value]}
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list):
        raise ValueError("a JWKS is a JSON object with a `keys` array")
    if not value["keys"]:
        raise ValueError("the JWKS has no keys")
    for number, jwk in enumerate(value["keys"], start=1):
        if not isinstance(jwk, dict):
            raise ValueError(f"key {number} in the JWKS is not a JSON object")
    return value


def verify_pack(pack: Mapping, jwks: Mapping) -> list[Check]:
    """Run every check on `pack` against the keys in `jwks` (see the module docstring)."""
    if not isinstance(pack, Mapping):
        return [Check("format", False, "the pack is not a JSON object")]
    checks = [
        _run("format", _check_format, pack),
        _run("fingerprint", _check_fingerprint, pack),
        _run("signature", _check_signature, pack, jwks),
        _run("events", _check_events, pack),
        _run("decision", _check_decision, pack),
        _run(DECISION_RECORDED, _check_recorded, pack),
    ]
    checkpoint_check = _run("checkpoint", _check_checkpoint, pack, jwks)
    checks.append(checkpoint_check)
    checks.append(_run("inclusion", _check_inclusion, pack, checkpoint_check.ok))
    return checks


class _Malformed(Exception):
    """A part of the pack a check needs is missing or of the wrong shape."""


@dataclass(frozen=True)
class _Event:
    sequence: int
    type: str
    payload_json: str
    prev_hash: bytes
    hash: bytes


def _run(name: str, check: Callable[..., str], *args: object) -> Check:
    # A check returns its detail when it holds and raises _Malformed saying why it does not.
    try:
        return Check(name, True, check(*args))
    except _Malformed as exc:
        return Check(name, False, str(exc))
    except (TypeError, ValueError, KeyError, RecursionError) as exc:  # fail closed, never a traceback
        return Check(name, False, f"could not be checked: {exc}")


# --- the checks ----------------------------------------------------------------------------


def _check_format(pack: Mapping) -> str:
    found = pack.get("format")
    if found != PACK_FORMAT:
        raise _Malformed(f"unknown format `{found}`; this verifier reads `{PACK_FORMAT}`")
    return PACK_FORMAT


def _check_fingerprint(pack: Mapping) -> str:
    claimed = pack.get("fingerprint")
    if not isinstance(claimed, str):
        raise _Malformed("the pack has no fingerprint")
    recomputed = pack_fingerprint(pack)
    if recomputed != claimed:
        raise _Malformed(f"the pack says {claimed} but its content hashes to {recomputed}")
    return recomputed


def _check_signature(pack: Mapping, jwks: Mapping) -> str:
    signature = _mapping(pack, "signature", "the pack")
    alg = signature.get("alg")
    if alg != SIGNATURE_ALGORITHM:
        raise _Malformed(f"alg `{alg}` is refused; only {SIGNATURE_ALGORITHM} is accepted")
    kid = _string(signature, "kid", "signature")
    key = _find_key(jwks, kid)
    try:
        sig = b64url_decode(_string(signature, "sig", "signature"))
    except ValueError:
        raise _Malformed("signature.sig is not base64url") from None
    if not key.verify(signed_bytes(pack), sig):
        raise _Malformed(f"the Ed25519 signature does not verify with key {kid}: altered, or signed by another key")
    return f"{SIGNATURE_ALGORITHM} by key {kid}"


def _check_events(pack: Mapping) -> str:
    events = _events(pack)
    problems: list[str] = []
    for before, after in zip(events, events[1:]):
        if after.sequence <= before.sequence:
            problems.append(f"event {after.sequence} is listed after event {before.sequence}: out of order or twice")
    links_checked = 0
    if not problems:  # runs of consecutive events only mean something in sequence order
        for run in _consecutive_runs(events):
            start_prev = ZERO_HASH if run[0].sequence == 1 else run[0].prev_hash
            links = [Link(e.sequence, e.payload_json, e.prev_hash, e.hash) for e in run]
            verdict = verify_chain(links, expected_first_sequence=run[0].sequence, expected_first_prev=start_prev)
            if not verdict.ok:
                problems.append(verdict.message)
            links_checked += len(run) - 1
    for event in events:
        if not _is_canonical(event.payload_json):
            problems.append(f"event {event.sequence}: payload_json is not canonical JSON")
    if problems:
        raise _Malformed(_summarise(problems))
    return (
        f"{_count(len(events), 'event')} ({_sequences(events)}): each hash = SHA-256(prev_hash ‖ payload), "
        f"payloads canonical, {_count(links_checked, 'link')} between consecutive events checked"
    )


def _check_decision(pack: Mapping) -> str:
    decision_id = _decision_id(pack)
    problems: list[str] = []
    naming = 0
    for event in _events(pack):
        payload = _payload(event)
        if payload.get("type") != event.type:
            said = payload.get("type")
            problems.append(f"event {event.sequence}: type is `{event.type}` but its payload says `{said}`")
        if "decision_id" not in payload:
            problems.append(f"event {event.sequence} names no decision (it is about `{payload.get('subject')}`)")
            continue
        naming += 1
        named = payload["decision_id"]
        if named != decision_id:
            problems.append(f"event {event.sequence} is about decision `{named}`, not `{decision_id}`")
    if problems:
        raise _Malformed(_summarise(problems))
    return f"event types match their payloads; {_count(naming, 'event')} name decision {decision_id}, none another"


def _check_recorded(pack: Mapping) -> str:
    decision_id = _decision_id(pack)
    outcome = _mapping(pack, "decision", "the pack").get("outcome")
    recorded = []
    for event in _events(pack):
        payload = _payload(event)
        is_recorded = event.type == DECISION_RECORDED and payload.get("type") == DECISION_RECORDED
        if is_recorded and payload.get("decision_id") == decision_id:
            recorded.append((event, payload))
    if not recorded:
        raise _Malformed(f"no {DECISION_RECORDED} event for decision `{decision_id}` is in the pack")
    for event, payload in recorded:
        recorded_outcome = _recorded_outcome(payload, default=outcome)
        if recorded_outcome != outcome:
            raise _Malformed(
                f"event {event.sequence} records outcome `{recorded_outcome}` but the pack says `{outcome}`"
            )
    first = recorded[0][0]
    return f"event {first.sequence} records decision {decision_id} (outcome {outcome})"


def _recorded_outcome(payload: dict, *, default: object) -> object:
    # Gavel's service records the outcome under `data`; a flatter payload may carry it on top.
    if "outcome" in payload:
        return payload["outcome"]
    data = payload.get("data")
    return data.get("outcome", default) if isinstance(data, dict) else default


def _check_checkpoint(pack: Mapping, jwks: Mapping) -> str:
    origin, tree_size, root_hash, checkpoint = _checkpoint(pack)
    key_id = _string(checkpoint, "key_id", "proof.checkpoint")
    note = _string(checkpoint, "note", "proof.checkpoint")
    key = _find_key(jwks, key_id)
    try:
        body = open_note(note, origin, key.raw)
    except NoteError as exc:
        raise _Malformed(f"the checkpoint note is refused: {exc.message}") from None
    except ValueError as exc:
        raise _Malformed(f"the origin cannot name a note key: {exc}") from None
    try:
        body_origin, body_size, body_root, _ = parse_body(body)
    except ValueError as exc:
        raise _Malformed(f"the signed note is not a checkpoint: {exc}") from None
    if (body_origin, body_size, body_root) != (origin, tree_size, root_hash):
        raise _Malformed(
            f"the signed checkpoint says {body_origin} size {body_size} root {_b64(body_root)}, "
            f"but proof.checkpoint says {origin} size {tree_size} root {_b64(root_hash)}"
        )
    return f"{origin} tree size {tree_size} root {_b64(root_hash)}, note signed by key {key_id}"


def _check_inclusion(pack: Mapping, checkpoint_verified: bool) -> str:
    _, tree_size, root_hash, _ = _checkpoint(pack)
    events = _events(pack)
    if not events:
        raise _Malformed("the pack has no events to prove")
    proofs, problems = _inclusion_proofs(pack)
    for event in events:
        proof = proofs.get(event.sequence)
        if proof is None:
            problems.append(f"event {event.sequence} has no inclusion proof")
            continue
        leaf_index, proof_size, audit_path = proof
        if leaf_index != event.sequence - 1:
            expected_index = event.sequence - 1
            problems.append(f"event {event.sequence}: leaf_index is {leaf_index}, not sequence − 1 = {expected_index}")
        elif proof_size != tree_size:
            problems.append(f"event {event.sequence}: the proof is for tree size {proof_size}, not {tree_size}")
        elif audit_path is None:
            problems.append(f"event {event.sequence}: audit_path is not a list of 32-byte hex hashes")
        elif not verify_inclusion(event.hash, leaf_index, tree_size, audit_path, root_hash):
            problems.append(f"event {event.sequence}: the audit path does not lead to the checkpoint root")
    if problems:
        raise _Malformed(_summarise(problems))
    if not checkpoint_verified:
        raise _Malformed(
            f"the {_count(len(events), 'proof')} lead to the root in proof.checkpoint, "
            "but that root is not trusted: its signed note did not verify"
        )
    return f"{_count(len(events), 'event')} in the signed tree of size {tree_size} (leaf index = sequence − 1)"


# --- reading the pack ----------------------------------------------------------------------


def _events(pack: Mapping) -> list[_Event]:
    listed = pack.get("events")
    if not isinstance(listed, list) or not listed:
        raise _Malformed("the pack has no events")
    return [_event(number, entry) for number, entry in enumerate(listed, start=1)]


def _event(number: int, entry: object) -> _Event:
    where = f"events[{number - 1}]"
    if not isinstance(entry, Mapping):
        raise _Malformed(f"{where} is not an object")
    sequence = entry.get("sequence")
    if not _is_whole(sequence) or sequence < 1:
        raise _Malformed(f"{where}.sequence is not a whole number >= 1")
    return _Event(
        sequence=sequence,
        type=_string(entry, "type", where),
        payload_json=_string(entry, "payload_json", where),
        prev_hash=_hex_hash(entry.get("prev_hash"), f"{where}.prev_hash"),
        hash=_hex_hash(entry.get("hash"), f"{where}.hash"),
    )


def _payload(event: _Event) -> dict:
    try:
        payload = _strict_json(event.payload_json)
    except ValueError:
        raise _Malformed(f"event {event.sequence}: payload_json is not JSON") from None
    if not isinstance(payload, dict):
        raise _Malformed(f"event {event.sequence}: payload_json is not a JSON object")
    return payload


def _decision_id(pack: Mapping) -> str:
    decision_id = _string(_mapping(pack, "decision", "the pack"), "decision_id", "decision")
    if not decision_id:
        raise _Malformed("decision.decision_id is empty")
    return decision_id


def _checkpoint(pack: Mapping) -> tuple[str, int, bytes, Mapping]:
    checkpoint = _mapping(_mapping(pack, "proof", "the pack"), "checkpoint", "proof")
    origin = _string(checkpoint, "origin", "proof.checkpoint")
    tree_size = checkpoint.get("tree_size")
    if not _is_whole(tree_size) or tree_size < 0:
        raise _Malformed("proof.checkpoint.tree_size is not a whole number")
    root_text = _string(checkpoint, "root_hash", "proof.checkpoint")
    try:
        root_hash = base64.b64decode(root_text, validate=True)
    except (binascii.Error, ValueError):
        raise _Malformed("proof.checkpoint.root_hash is not standard base64") from None
    if len(root_hash) != 32 or _b64(root_hash) != root_text:
        raise _Malformed("proof.checkpoint.root_hash is not the base64 of a 32-byte hash")
    return origin, tree_size, root_hash, checkpoint


def _inclusion_proofs(pack: Mapping) -> tuple[dict[int, tuple[int, int, list[bytes] | None]], list[str]]:
    listed = _mapping(pack, "proof", "the pack").get("inclusion")
    if not isinstance(listed, list):
        raise _Malformed("proof.inclusion is not a list")
    proofs: dict[int, tuple[int, int, list[bytes] | None]] = {}
    problems: list[str] = []
    for number, entry in enumerate(listed):
        where = f"proof.inclusion[{number}]"
        if not isinstance(entry, Mapping):
            raise _Malformed(f"{where} is not an object")
        sequence, leaf_index, tree_size = (entry.get(name) for name in ("sequence", "leaf_index", "tree_size"))
        if not (_is_whole(sequence) and _is_whole(leaf_index) and _is_whole(tree_size)):
            raise _Malformed(f"{where}: sequence, leaf_index and tree_size must be whole numbers")
        if sequence in proofs:
            problems.append(f"event {sequence} has more than one inclusion proof")
        proofs[sequence] = (leaf_index, tree_size, _audit_path(entry.get("audit_path")))
    return proofs, problems


def _audit_path(value: object) -> list[bytes] | None:
    if not isinstance(value, list) or not all(isinstance(node, str) and _HEX_HASH.fullmatch(node) for node in value):
        return None
    return [bytes.fromhex(node) for node in value]


def _find_key(jwks: Mapping, kid: str) -> PublicKey:
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        raise _Malformed("the JWKS has no `keys` list")
    for jwk in keys:
        if not isinstance(jwk, Mapping) or jwk.get("kid", kid) != kid:
            continue
        try:
            key = PublicKey.from_jwk(jwk)
        except ValueError as exc:
            if "kid" in jwk:
                raise _Malformed(f"the JWKS key {kid} cannot be used: {exc}") from None
            continue
        if key.kid == kid:
            return key
    raise _Malformed(f"no key {kid} in the JWKS")


# --- small helpers -------------------------------------------------------------------------


def _mapping(container: Mapping, name: str, where: str) -> Mapping:
    value = container.get(name)
    if not isinstance(value, Mapping):
        raise _Malformed(f"{where} has no `{name}` object")
    return value


def _string(container: Mapping, name: str, where: str) -> str:
    value = container.get(name)
    if not isinstance(value, str):
        raise _Malformed(f"{where}.{name} is missing or not a string")
    return value


def _hex_hash(value: object, where: str) -> bytes:
    if not isinstance(value, str) or not _HEX_HASH.fullmatch(value):
        raise _Malformed(f"{where} is not a 32-byte lower-case hex hash")
    return bytes.fromhex(value)


def _is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_canonical(payload_json: str) -> bool:
    try:
        return canonical_json(_strict_json(payload_json)) == payload_json
    except (TypeError, ValueError):
        return False


def _consecutive_runs(events: list[_Event]) -> list[list[_Event]]:
    runs: list[list[_Event]] = []
    for event in events:
        if runs and event.sequence == runs[-1][-1].sequence + 1:
            runs[-1].append(event)
        else:
            runs.append([event])
    return runs


def _strict_json(text: object) -> object:
    if not isinstance(text, str):
        raise ValueError("not text")
    return strict_loads(text, parse_float=JsonNumber)  # re-canonicalises exactly as the signer's JCS did


def _summarise(problems: list[str]) -> str:
    shown = "; ".join(problems[:MAX_LISTED_PROBLEMS])
    hidden = len(problems) - MAX_LISTED_PROBLEMS
    return shown + (f" (and {hidden} more)" if hidden > 0 else "")


def _sequences(events: list[_Event]) -> str:
    numbers = [str(event.sequence) for event in events]
    return ", ".join(numbers) if len(numbers) <= 6 else ", ".join(numbers[:5]) + f", …, {numbers[-1]}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
