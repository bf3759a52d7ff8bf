"""Evidence use cases: checkpoints, proofs, evidence packs, ledger verification.

Merkle trees are kept in memory per chain and only ever extended from the store (the store
is the truth; `verify_ledger` recomputes everything from the rows and never trusts the cache).
A checkpoint's origin is `<issuer>/ledger/<tenant>/<environment>`; its note is a C2SP
tlog-checkpoint body (with a `timestamp <unix seconds>` extension line) in a C2SP signed
note, signed by the active signing key under the origin as key name.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from datetime import datetime

from gavel.app.errors import FieldViolation, InvalidRequest, NotFound
from gavel.app.model import CheckpointRecord
from gavel.app.ports import UnitOfWork
from gavel.crypto.keys import KeySet
from gavel.ledger.chain import Link, verify_chain
from gavel.ledger.checkpoint import checkpoint_body, open_note, sign_note
from gavel.ledger.merkle import MerkleTree, leaf_hash

PAGE = 5000


def origin_of(issuer: str, tenant_id: str, environment: str) -> str:
    return f"{issuer}/ledger/{tenant_id}/{environment}"


MERKLE_BLOCK_LEVEL = 8  # the cache keeps one node per 256 events; proofs read one block back


class MerkleCache:
    """The Merkle tree of each chain, extended on demand from the store's event hashes. It keeps
    the levels above blocks of 2**MERKLE_BLOCK_LEVEL events (about 64 bytes per block, so memory
    stays flat however long the server runs) and reads a block's event hashes back when a proof
    needs a node inside it."""

    def __init__(self, block_level: int = MERKLE_BLOCK_LEVEL) -> None:
        self._trees: dict[tuple[str, str], MerkleTree] = {}
        self._block_level = block_level
        self._lock = threading.Lock()

    def _grown(self, uow: UnitOfWork, tenant_id: str, environment: str, size: int) -> MerkleTree:
        tree = self._trees.get((tenant_id, environment))
        if tree is None:
            tree = self._trees[(tenant_id, environment)] = MerkleTree(block_level=self._block_level)
        tree.fetch = lambda start, end: uow.ledger.hashes(tenant_id, environment, start + 1, end)
        if tree.size < size:
            for h in uow.ledger.hashes(tenant_id, environment, tree.size + 1, size):
                tree.append(h)
        if tree.size < size:
            raise NotFound(f"the ledger has only {tree.size} events")
        return tree

    def root(self, uow: UnitOfWork, tenant_id: str, environment: str, size: int) -> bytes:
        with self._lock:
            return self._grown(uow, tenant_id, environment, size).root(size)

    def inclusion(self, uow: UnitOfWork, tenant_id: str, environment: str, index: int, size: int) -> list[bytes]:
        with self._lock:
            return self._grown(uow, tenant_id, environment, size).inclusion_proof(index, size)

    def consistency(self, uow: UnitOfWork, tenant_id: str, environment: str, first: int, second: int) -> list[bytes]:
        with self._lock:
            return self._grown(uow, tenant_id, environment, second).consistency_proof(first, second)


def chain_size(uow: UnitOfWork, tenant_id: str, environment: str) -> int:
    head = uow.ledger.head(tenant_id, environment, lock=False)
    return head[0] if head is not None else 0


def make_checkpoint(uow: UnitOfWork, merkle: MerkleCache, keys: KeySet, issuer: str, tenant_id: str,
                    environment: str, size: int, now: datetime) -> CheckpointRecord:
    origin = origin_of(issuer, tenant_id, environment)
    root = merkle.root(uow, tenant_id, environment, size)
    body = checkpoint_body(origin, size, root, (f"timestamp {int(now.timestamp())}",))
    note, signature = sign_note(body, origin, keys.active)
    record = CheckpointRecord(tenant_id, environment, size, root, now, keys.active.kid, signature, note, origin)
    if not uow.checkpoints.add(record):  # another writer signed this size first: theirs stands
        existing = uow.checkpoints.latest(tenant_id, environment)
        if existing is not None and existing.tree_size == size:
            return existing
    return record


def current_checkpoint(uow: UnitOfWork, merkle: MerkleCache, keys: KeySet, issuer: str, tenant_id: str,
                       environment: str, now: datetime) -> CheckpointRecord:
    """A checkpoint covering every committed event: the latest one, or a new one if it is behind."""
    size = chain_size(uow, tenant_id, environment)
    latest = uow.checkpoints.latest(tenant_id, environment)
    if latest is not None and latest.tree_size >= size:
        return latest
    return make_checkpoint(uow, merkle, keys, issuer, tenant_id, environment, size, now)


def inclusion_proof(uow: UnitOfWork, merkle: MerkleCache, tenant_id: str, environment: str, sequence: int,
                    tree_size: int) -> dict:
    if tree_size == 0:
        latest = uow.checkpoints.latest(tenant_id, environment)
        tree_size = latest.tree_size if latest is not None else chain_size(uow, tenant_id, environment)
    if sequence < 1 or sequence > tree_size:
        raise InvalidRequest(f"sequence must be between 1 and the tree size {tree_size}",
                             (FieldViolation("sequence", f"not in 1..{tree_size}"),))
    if tree_size > chain_size(uow, tenant_id, environment):
        raise InvalidRequest(f"tree_size {tree_size} is larger than the ledger",
                             (FieldViolation("tree_size", "larger than the ledger"),))
    leaf = uow.ledger.hashes(tenant_id, environment, sequence, sequence)[0]
    path = merkle.inclusion(uow, tenant_id, environment, sequence - 1, tree_size)
    return {"leaf_index": sequence - 1, "tree_size": tree_size, "leaf_hash": leaf_hash(leaf), "audit_path": path}


def consistency_proof(uow: UnitOfWork, merkle: MerkleCache, tenant_id: str, environment: str, first: int,
                      second: int) -> dict:
    size = chain_size(uow, tenant_id, environment)
    second = second or size
    if not 1 <= first <= second <= size:
        violation = (FieldViolation("second_size", f"larger than the ledger ({size})") if second > size
                     else FieldViolation("first_size", "must be ≥ 1") if first < 1
                     else FieldViolation("first_size", "larger than second_size"))
        raise InvalidRequest(f"need 1 ≤ first_size ≤ second_size ≤ {size}", (violation,))
    return {"proof": merkle.consistency(uow, tenant_id, environment, first, second), "first_size": first,
            "second_size": second}


def _links(uow: UnitOfWork, tenant_id: str, environment: str) -> Iterator[Link]:
    sequence = 1
    while True:
        batch = uow.ledger.events(tenant_id, environment, sequence, PAGE)
        if not batch:
            return
        for e in batch:
            yield Link(e.sequence, e.payload_json, e.prev_hash, e.hash)
        sequence = batch[-1].sequence + 1


def verify_ledger(uow: UnitOfWork, keys: KeySet, tenant_id: str, environment: str, now: datetime) -> dict:
    """Recompute the chain and the tree from the rows; report the first bad sequence number."""
    verdict = verify_chain(_links(uow, tenant_id, environment))

    def result(ok: bool, first_bad: int, message: str) -> dict:
        return {"ok": ok, "checked": verdict.checked, "first_bad_sequence": first_bad, "message": message}

    if not verdict.ok:
        return result(False, verdict.first_bad_sequence, verdict.message)
    size = verdict.checked
    head = uow.ledger.head(tenant_id, environment, lock=False)
    if head is not None and head[0] != size:
        return result(False, size + 1, f"the chain head records {head[0]} events but only {size} are present")
    tree = MerkleTree(uow.ledger.hashes(tenant_id, environment, 1, size))
    previous = 0
    for cp in uow.checkpoints.all(tenant_id, environment):
        key = keys.find(cp.key_id, now)
        if key is None:
            return result(False, previous + 1, f"checkpoint {cp.tree_size} is signed by unknown key {cp.key_id}")
        try:
            open_note(cp.note, cp.origin, key.raw)
        except Exception as exc:  # NoteError or malformed text: the checkpoint itself was altered
            return result(False, previous + 1, f"checkpoint {cp.tree_size} does not verify: {exc}")
        if cp.tree_size > size:
            return result(False, size + 1, f"checkpoint {cp.tree_size} covers events that are missing: the "
                                           f"ledger ends at {size}")
        if tree.root(cp.tree_size) != cp.root_hash:
            return result(False, previous + 1, f"events {previous + 1}–{cp.tree_size} no longer match the "
                                               f"checkpoint signed over them")
        previous = cp.tree_size
    return result(True, 0, f"{size} events and {previous and 'checkpoints up to ' + str(previous) or 'no checkpoints'}"
                           " verify")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
