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

A server keeps one tree per chain for as long as it runs, so it keeps only the levels from
`block_level` up (2**block_level leaves per block): memory is about 2 × 32 bytes per *block*,
plus the leaf hashes of the last, incomplete block. A node below that level is recomputed from its
block's leaf inputs, which `leaves(start, end)` supplies (the server reads them from the store);
they must hash to the block's root the tree kept, or the proof is refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

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

    def __init__(self, leaves: Iterable[bytes] = (), *, block_level: int = 0,
                 fetch: Callable[[int, int], Sequence[bytes]] | None = None) -> None:
        if block_level < 0:
            raise ValueError("block_level must be >= 0")
        self._block_level = block_level
        self._levels: list[bytearray] = [bytearray()]  # level block_level and up
        self._tail = bytearray()  # block_level > 0: the leaf hashes of the incomplete last block
        self._fetched: tuple[int, bytes] = (-1, b"")  # the last complete block read back: (block, hashes)
        self.fetch = fetch  # leaves(start, end) → the leaf inputs [start, end), for block_level > 0
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
        self._size += 1
        if self._block_level:
            self._tail += node
            if len(self._tail) < HASH_LENGTH << self._block_level:
                return
            node, self._tail = _perfect_root(bytes(self._tail)), bytearray()
        index = (self._size - 1) >> self._block_level
        level = 0
        while True:
            if level == len(self._levels):
                self._levels.append(bytearray())
            self._levels[level] += node
            if index % 2 == 0:  # a left child: its parent waits for a right sibling
                break
            node = node_hash(self._kept(level, index - 1), node)
            index //= 2
            level += 1

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
        if level >= self._block_level:
            return self._kept(level - self._block_level, index)
        block = (index << level) >> self._block_level
        hashes = self._block_hashes(block)
        offset = ((index << level) - (block << self._block_level)) * HASH_LENGTH
        return _perfect_root(hashes[offset : offset + (HASH_LENGTH << level)])

    def _kept(self, level: int, index: int) -> bytes:
        offset = index * HASH_LENGTH
        return bytes(self._levels[level][offset : offset + HASH_LENGTH])

    def _block_hashes(self, block: int) -> bytes:
        """The leaf hashes of `block`: the incomplete last block from memory, a complete one read
        back through `fetch` and checked against the root kept for it."""
        if block == self._size >> self._block_level:
            return bytes(self._tail)
        if self._fetched[0] == block:
            return self._fetched[1]
        if self.fetch is None:
            raise ValueError("this tree keeps no leaves below its block level and has nothing to read them from")
        width = 1 << self._block_level
        leaves = self.fetch(block * width, (block + 1) * width)
        if len(leaves) != width or not all(isinstance(leaf, bytes) for leaf in leaves):
            raise ValueError(f"block {block}: expected {width} leaves, got {len(leaves)}")
        hashes = b"".join(leaf_hash(leaf) for leaf in leaves)
        if _perfect_root(hashes) != self._kept(0, block):
            raise ValueError(f"block {block}: the leaves read back do not hash to the root kept for them")
        self._fetched = (block, hashes)
        return hashes

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


def _perfect_root(hashes: bytes) -> bytes:
    """MTH of a power-of-two number of leaves, given their leaf hashes back to back."""
    level = [hashes[i : i + HASH_LENGTH] for i in range(0, len(hashes), HASH_LENGTH)]
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


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
