"""Evidence packs: everything about one decision, fingerprinted and signed.

A pack is a JSON object built by the service (its shape is described, and checked, in
`gavel.ledger.verify`). Sealing adds two members:

- `fingerprint`: `sha256:` + hex SHA-256 of the canonical JSON (RFC 8785) of the pack without
  `fingerprint` and `signature`;
- `signature`: `{"alg": "EdDSA", "kid": <key thumbprint>, "sig": <base64url Ed25519 signature>}`
  over the canonical JSON of the pack without `signature`, so the signature covers the
  fingerprint as well.

Every value must have a canonical JSON form (no floats: amounts are Decimals). The record helpers
below write events, the checkpoint and inclusion proofs in exactly the encodings the verifier
reads (hex for event hashes and audit paths, standard base64 for the checkpoint root).
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping, Sequence

from gavel.crypto.keys import Ed25519KeyPair, b64url_encode
from gavel.ledger.canonical import canonical_bytes, sha256_hex_digest
from gavel.ledger.chain import Link

PACK_FORMAT = "gavel.evidence-pack/1"
SIGNATURE_ALGORITHM = "EdDSA"
FINGERPRINT_KEY = "fingerprint"
SIGNATURE_KEY = "signature"


def pack_fingerprint(pack: Mapping) -> str:
    """Return `sha256:<hex>` of the canonical pack without `fingerprint` and `signature`."""
    return sha256_hex_digest(canonical_bytes(_without(pack, FINGERPRINT_KEY, SIGNATURE_KEY)))


def signed_bytes(pack: Mapping) -> bytes:
    """Return the bytes the pack signature covers: the canonical pack without `signature`."""
    return canonical_bytes(_without(pack, SIGNATURE_KEY))


def seal(pack: Mapping, key: Ed25519KeyPair) -> dict:
    """Return a copy of `pack` with its fingerprint and `key`'s signature (any old ones replaced)."""
    sealed = copy.deepcopy(_without(pack, FINGERPRINT_KEY, SIGNATURE_KEY))
    sealed[FINGERPRINT_KEY] = pack_fingerprint(sealed)
    signature = key.sign(signed_bytes(sealed))
    sealed[SIGNATURE_KEY] = {"alg": SIGNATURE_ALGORITHM, "kid": key.kid, "sig": b64url_encode(signature)}
    return sealed


def event_record(link: Link, event_type: str) -> dict:
    """Return an entry of the pack's `events` list for a stored event."""
    return {
        "sequence": link.sequence,
        "type": event_type,
        "payload_json": link.payload_json,
        "prev_hash": link.prev_hash.hex(),
        "hash": link.hash.hex(),
    }


def checkpoint_record(origin: str, tree_size: int, root_hash: bytes, timestamp: str, key_id: str, note: str) -> dict:
    """Return the pack's `proof.checkpoint`: the tree head, the signing kid and the signed note."""
    return {
        "origin": origin,
        "tree_size": tree_size,
        "root_hash": base64.b64encode(root_hash).decode("ascii"),
        "timestamp": timestamp,
        "key_id": key_id,
        "note": note,
    }


def inclusion_record(sequence: int, tree_size: int, audit_path: Sequence[bytes]) -> dict:
    """Return an entry of the pack's `proof.inclusion` list for event `sequence` (leaf sequence − 1)."""
    return {
        "sequence": sequence,
        "leaf_index": sequence - 1,
        "tree_size": tree_size,
        "audit_path": [node.hex() for node in audit_path],
    }


def _without(pack: Mapping, *names: str) -> dict:
    if not isinstance(pack, Mapping):
        raise TypeError("an evidence pack is a mapping")
    return {name: value for name, value in pack.items() if name not in names}
