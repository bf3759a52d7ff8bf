"""The Merkle tree over ledger events, exactly as RFC 6962 / RFC 9162 §2.1 define it.

Leaf n is the 32-byte hash of event n + 1. A leaf is hashed as SHA-256(0x00 ‖ leaf) and an
interior node as SHA-256(0x01 ‖ left ‖ right); a tree of n > 1 leaves splits at k, the largest
power of two below n. The empty tree's hash is SHA-256 of the empty string. Proofs come out in
the RFC's order, so any RFC 6962 / 9162 verifier accepts them, and the two verifiers below
follow RFC 9162 §2.1.3.2 and §2.1.4.2 step by step.

How `MerkleTree` stays fast (O(log n) per append, root and proof) for millions of leaves: it
keeps one flat array of hashes per level. Level 0 holds every leaf hash; level h holds the hash
of each complete, aligned block of 2**h leaves, [i·2**h, (i+1)·2**h). Appending a leaf adds it
to level 0 and, while the new node is a right child, hashes it with its left sibling into the
level above, so each level only ever grows at its end. Every subtree that the RFC recursion
visits starts at a multiple of its size rounded up to a power of two, so a subtree of exactly
2**h leaves is one lookup, and a ragged one is a lookup on the left plus a descent on the right:
MTH of any prefix, and every proof element, costs O(log n) hashes, without rehashing the leaves.
Memory is about 2 × 32 bytes per leaf.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_LENGTH = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
# A tree can't have more than 2**64 leaves in any RFC 9162 log, so no proof is longer than this.
MAX_PROOF_LENGTH = 64


def leaf_hash(leaf: bytes) -> bytes:
    """Return the RFC 6962 hash of a leaf input: SHA-256(0x00 ‖ leaf)."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 hash of an interior node: SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class MerkleTree:
    """An append-only RFC 6962 Merkle tree that can prove any past size (see the module doc).

    Mutable on purpose, unlike the rest of the ledger core: it is an accumulator the ledger
    grows one event at a time. It stores hashes only, never the leaf inputs.
    """

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    def append(self, leaf: bytes) -> None:
        """Append one leaf input (for the ledger, an event's 32-byte hash)."""
        if not isinstance(leaf, bytes):
            raise TypeError("a leaf is bytes")
        node = leaf_hash(leaf)
        index = self._size
        level = 0
        while True:
            if level == len(self._levels):
                self._levels.append(bytearray())
            self._levels[level] += node
            if index % 2 == 0:  # a left child: its parent waits for a right sibling
                break
            node = node_hash(self._node(level, index - 1), node)
            index //= 2
            level += 1
        self._size += 1

    def root(self, size: int | None = None) -> bytes:
        """Return MTH of the first `size` leaves (all of them by default)."""
        size = self._size if size is None else size
        self._require(0 <= _whole(size) <= self._size, f"size {size} is outside 0..{self._size}")
        return EMPTY_ROOT if size == 0 else self._subtree(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """Return the RFC 6962 audit path PATH(index, D[0:size]), from the leaf up."""
        self._require(
            0 <= _whole(index) < _whole(size) <= self._size,
            f"need 0 <= index < size <= {self._size}, got index {index}, size {size}",
        )
        top_down: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            middle = start + _split(end - start)
            if index < middle:
                top_down.append(self._subtree(middle, end))
                end = middle
            else:
                top_down.append(self._subtree(start, middle))
                start = middle
        return top_down[::-1]

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """Return the RFC 6962 proof PROOF(first, D[0:second]) that the first tree is a prefix.

        RFC 6962 defines the proof for 0 < first < second; for first == 0 or first == second it
        is empty, as RFC 9162 verifiers expect.
        """
        self._require(
            0 <= _whole(first) <= _whole(second) <= self._size,
            f"need 0 <= first <= second <= {self._size}, got first {first}, second {second}",
        )
        if first in (0, second):
            return []
        # SUBPROOF(m, D[start:end], b), unrolled: walk down, collecting siblings top-down.
        top_down: list[bytes] = []
        start, end, m, is_whole_old_tree = 0, second, first, True
        while m != end - start:
            k = _split(end - start)
            if m <= k:
                top_down.append(self._subtree(start + k, end))
                end = start + k
            else:
                top_down.append(self._subtree(start, start + k))
                start, m, is_whole_old_tree = start + k, m - k, False
        if not is_whole_old_tree:
            top_down.append(self._subtree(start, end))
        return top_down[::-1]

    def _subtree(self, start: int, end: int) -> bytes:
        # MTH(D[start:end]) for the aligned subtrees the RFC recursion visits (module doc).
        size = end - start
        if size & (size - 1) == 0 and start % size == 0:
            level = size.bit_length() - 1
            return self._node(level, start >> level)
        k = _split(size)
        return node_hash(self._subtree(start, start + k), self._subtree(start + k, end))

    def _node(self, level: int, index: int) -> bytes:
        offset = index * HASH_LENGTH
        return bytes(self._levels[level][offset : offset + HASH_LENGTH])

    @staticmethod
    def _require(condition: bool, message: str) -> None:
        if not condition:
            raise ValueError(message)


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Return whether `proof` shows leaf input `leaf` at `index` in the tree of `size` with `root`.

    RFC 9162 §2.1.3.2; any malformed argument gives False.
    """
    if not (isinstance(leaf, bytes) and _is_index(index) and _is_index(size) and index < size):
        return False
    if not (_is_hash(root) and _is_proof(proof)):
        return False
    fn, sn = index, size - 1
    r = leaf_hash(leaf)
    for p in proof:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = node_hash(p, r)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]) -> bool:
    """Return whether `proof` shows the tree of size `first` is a prefix of the one of `second`.

    RFC 9162 §2.1.4.2, plus the two cases it leaves implicit: equal sizes need an empty proof and
    equal roots; an empty first tree needs an empty proof and the empty-tree root.
    """
    if not (_is_index(first) and _is_index(second) and first <= second):
        return False
    if not (_is_hash(first_root) and _is_hash(second_root) and _is_proof(proof)):
        return False
    if first == second:
        return len(proof) == 0 and first_root == second_root
    if first == 0:
        return len(proof) == 0 and first_root == EMPTY_ROOT
    if len(proof) == 0:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn % 2 == 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0


def _split(n: int) -> int:
    # The largest power of two strictly below n (n >= 2).
    return 1 << ((n - 1).bit_length() - 1)


def _whole(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {value!r}")
    return value


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_LENGTH


def _is_proof(proof: object) -> bool:
    if isinstance(proof, bytes | str) or not isinstance(proof, Sequence):
        return False
    return len(proof) <= MAX_PROOF_LENGTH and all(_is_hash(p) for p in proof)
