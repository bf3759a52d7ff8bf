"""The Merkle tree against an independent reading of RFC 6962 §2.1, and the RFC 9162 verifiers."""

import hashlib
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gavel.ledger import merkle as merkle_module
from gavel.ledger.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

# --- an oracle written straight from the RFC 6962 §2.1 definitions, sharing no code -----------


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def rfc_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return _h(b"")
    if n == 1:
        return _h(b"\x00" + d[0])
    k = _k(n)
    return _h(b"\x01" + rfc_mth(d[:k]) + rfc_mth(d[k:]))


def rfc_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return rfc_path(m, d[:k]) + [rfc_mth(d[k:])]
    return rfc_path(m - k, d[k:]) + [rfc_mth(d[:k])]


def rfc_proof(m: int, d: list[bytes]) -> list[bytes]:
    return rfc_subproof(m, d, True)


def rfc_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [rfc_mth(d)]
    k = _k(n)
    if m <= k:
        return rfc_subproof(m, d[:k], b) + [rfc_mth(d[k:])]
    return rfc_subproof(m - k, d[k:], False) + [rfc_mth(d[:k])]


def leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(f"event {i}".encode()).digest() for i in range(n)]


ORACLE_LEAVES = leaves(70)
ORACLE_TREE = MerkleTree(ORACLE_LEAVES)

# --- published RFC 6962 vectors (the Certificate Transparency reference tree) -------------------

CT_LEAVES = [
    bytes.fromhex(x)
    for x in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
]
CT_ROOTS = [
    bytes.fromhex(x)
    for x in [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]


def test_empty_tree_root_is_sha256_of_the_empty_string():
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert MerkleTree().root() == EMPTY_ROOT
    assert MerkleTree().size == 0
    assert ORACLE_TREE.root(0) == EMPTY_ROOT


def test_hash_prefixes():
    assert leaf_hash(b"x") == _h(b"\x00x")
    assert node_hash(b"a", b"b") == _h(b"\x01ab")


def test_published_ct_roots_and_proofs():
    tree = MerkleTree(CT_LEAVES)
    assert [tree.root(n) for n in range(1, 9)] == CT_ROOTS
    assert [p.hex() for p in tree.inclusion_proof(0, 8)] == [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]
    assert [p.hex() for p in tree.inclusion_proof(5, 8)] == [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]
    assert [p.hex() for p in tree.consistency_proof(2, 5)] == [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ]
    assert verify_consistency(2, 5, CT_ROOTS[1], CT_ROOTS[4], tree.consistency_proof(2, 5))


def test_roots_match_the_oracle_for_every_size_up_to_70():
    for size in range(71):
        assert ORACLE_TREE.root(size) == rfc_mth(ORACLE_LEAVES[:size]), size


def test_tree_grown_leaf_by_leaf_matches_the_oracle_at_each_step():
    tree = MerkleTree()
    for size, leaf in enumerate(ORACLE_LEAVES, start=1):
        tree.append(leaf)
        assert tree.size == size
        assert tree.root() == rfc_mth(ORACLE_LEAVES[:size])


def test_inclusion_proofs_match_the_oracle_and_verify_for_every_index_and_size_up_to_70():
    for size in range(1, 71):
        d = ORACLE_LEAVES[:size]
        root = rfc_mth(d)
        for index in range(size):
            proof = ORACLE_TREE.inclusion_proof(index, size)
            assert proof == rfc_path(index, d), (index, size)
            assert verify_inclusion(d[index], index, size, proof, root)


def test_consistency_proofs_match_the_oracle_and_verify_for_every_pair_up_to_70():
    for second in range(1, 71):
        second_root = rfc_mth(ORACLE_LEAVES[:second])
        for first in range(1, second):
            proof = ORACLE_TREE.consistency_proof(first, second)
            assert proof == rfc_proof(first, ORACLE_LEAVES[:second]), (first, second)
            assert verify_consistency(first, second, rfc_mth(ORACLE_LEAVES[:first]), second_root, proof)


def test_consistency_edge_cases():
    root5 = ORACLE_TREE.root(5)
    assert ORACLE_TREE.consistency_proof(5, 5) == []
    assert ORACLE_TREE.consistency_proof(0, 5) == []
    assert verify_consistency(5, 5, root5, root5, [])
    assert not verify_consistency(5, 5, root5, ORACLE_TREE.root(6), [])
    assert not verify_consistency(5, 5, root5, root5, [root5])
    assert verify_consistency(0, 5, EMPTY_ROOT, root5, [])
    assert not verify_consistency(0, 5, root5, root5, [])
    assert not verify_consistency(3, 5, ORACLE_TREE.root(3), root5, [])


@settings(max_examples=200, deadline=None)
@given(
    data=st.lists(st.binary(max_size=40), min_size=1, max_size=300),
    picks=st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6)),
)
def test_random_trees_agree_with_the_oracle(data, picks):
    tree = MerkleTree(data)
    size = picks[0] % len(data) + 1
    index = picks[1] % size
    first = picks[2] % size + 1
    d = data[:size]
    root = rfc_mth(d)
    assert tree.root(size) == root
    proof = tree.inclusion_proof(index, size)
    assert proof == rfc_path(index, d)
    assert verify_inclusion(d[index], index, size, proof, root)
    consistency = tree.consistency_proof(first, size)
    if first < size:
        assert consistency == rfc_proof(first, d)
    assert verify_consistency(first, size, rfc_mth(data[:first]), root, consistency)


def flip(node: bytes) -> bytes:
    return bytes([node[0] ^ 1]) + node[1:]


def test_tampered_inclusion_proofs_fail():
    size, index = 53, 37
    root = ORACLE_TREE.root(size)
    leaf = ORACLE_LEAVES[index]
    proof = ORACLE_TREE.inclusion_proof(index, size)
    assert verify_inclusion(leaf, index, size, proof, root)
    for position in range(len(proof)):
        tampered = list(proof)
        tampered[position] = flip(tampered[position])
        assert not verify_inclusion(leaf, index, size, tampered, root)
    assert not verify_inclusion(flip(leaf), index, size, proof, root)
    assert not verify_inclusion(leaf, index + 1, size, proof, root)
    # RFC 9162 checks the path's shape, which sizes 49..64 share here; the root binds the size,
    # which is why a checkpoint signs the two together. A size of another shape fails.
    assert not verify_inclusion(leaf, index, 48, proof, root)
    assert not verify_inclusion(leaf, index, 65, proof, root)
    assert not verify_inclusion(leaf, index, size, proof, flip(root))
    assert not verify_inclusion(leaf, index, size, proof[:-1], root)
    assert not verify_inclusion(leaf, index, size, [*proof, proof[0]], root)
    assert not verify_inclusion(leaf_hash(leaf), index, size, proof, root)  # the leaf input, not its hash


def test_tampered_consistency_proofs_fail():
    first, second = 21, 64 + 5
    first_root, second_root = ORACLE_TREE.root(first), ORACLE_TREE.root(second)
    proof = ORACLE_TREE.consistency_proof(first, second)
    assert verify_consistency(first, second, first_root, second_root, proof)
    for position in range(len(proof)):
        tampered = list(proof)
        tampered[position] = flip(tampered[position])
        assert not verify_consistency(first, second, first_root, second_root, tampered)
    assert not verify_consistency(first, second, flip(first_root), second_root, proof)
    assert not verify_consistency(first, second, first_root, flip(second_root), proof)
    assert not verify_consistency(first + 1, second, first_root, second_root, proof)
    assert not verify_consistency(first, 64, first_root, second_root, proof)  # another shape
    assert not verify_consistency(first, 129, first_root, second_root, proof)
    assert not verify_consistency(first, second, first_root, second_root, proof[:-1])


@pytest.mark.parametrize(
    "args",
    [
        (b"x", 3, 3, [], bytes(32)),
        (b"x", -1, 3, [], bytes(32)),
        (b"x", True, 3, [], bytes(32)),
        (b"x", 0, 1, [], b"short"),
        (b"x", 0, 2, [b"short"], bytes(32)),
        (b"x", 0, 2, b"\x00" * 32, bytes(32)),
        ("x", 0, 1, [], bytes(32)),
        (b"x", 0, 2, [bytes(32)] * 65, bytes(32)),
    ],
)
def test_verify_inclusion_returns_false_for_invalid_arguments(args):
    assert verify_inclusion(*args) is False


def test_verify_consistency_returns_false_for_invalid_arguments():
    root = bytes(32)
    assert verify_consistency(5, 3, root, root, [root]) is False
    assert verify_consistency(-1, 3, root, root, [root]) is False
    assert verify_consistency(1, 3, b"short", root, [root]) is False
    assert verify_consistency(1, 3, root, root, [b"short"]) is False
    assert verify_consistency(1, 3, root, root, "not a proof") is False


# --- a tree that keeps only the levels above its blocks --------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.integers(0, 70), st.integers(1, 4), st.data())
def test_a_tree_keeping_only_block_roots_answers_exactly_like_the_full_tree(count, block_level, data):
    leaves = [hashlib.sha256(str(i).encode()).digest() for i in range(count)]
    reads: list[tuple[int, int]] = []

    def fetch(start: int, end: int) -> list[bytes]:
        reads.append((start, end))
        return leaves[start:end]

    full = MerkleTree(leaves)
    bounded = MerkleTree(leaves, block_level=block_level, fetch=fetch)
    assert bounded.size == full.size == count
    assert len(bounded._levels[0]) == (count >> block_level) * 32  # nothing below the blocks is kept
    for size in range(count + 1):
        assert bounded.root(size) == full.root(size)
    if count:
        size = data.draw(st.integers(1, count))
        for index in range(size):
            assert bounded.inclusion_proof(index, size) == full.inclusion_proof(index, size)
        for first in range(size + 1):
            assert bounded.consistency_proof(first, size) == full.consistency_proof(first, size)
    assert all(end - start == 1 << block_level for start, end in reads)


def test_leaves_read_back_must_hash_to_the_block_root_the_tree_kept():
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(16)]
    tampered = list(leaves)
    tampered[5] = hashlib.sha256(b"rewritten").digest()
    tree = MerkleTree(leaves, block_level=2, fetch=lambda start, end: tampered[start:end])
    with pytest.raises(ValueError, match="do not hash to the root"):
        tree.inclusion_proof(5, 16)
    tree.fetch = lambda start, end: leaves[start:end - 1]
    with pytest.raises(ValueError, match="expected 4 leaves"):
        tree.inclusion_proof(5, 16)
    tree.fetch = None
    with pytest.raises(ValueError, match="^this tree keeps no leaves below its block level and has nothing to read "
                                         "them from$"):
        tree.inclusion_proof(5, 16)
    assert tree.root() == MerkleTree(leaves).root()  # roots need no leaves from complete blocks


# --- the verifiers' arguments: bounds, types and malformed proofs --------------------------------


SMALL_SIZES = range(1, 17)


def test_a_genuine_proof_is_refused_at_any_other_index_including_negative_and_past_the_end():
    for size in SMALL_SIZES:
        root = ORACLE_TREE.root(size)
        for index in range(size):
            proof = ORACLE_TREE.inclusion_proof(index, size)
            leaf = ORACLE_LEAVES[index]
            assert verify_inclusion(leaf, index, size, proof, root)
            for other in (index - size, index + size, -1 - index, size, size + 1, -size):
                assert verify_inclusion(leaf, other, size, proof, root) is False, (index, other, size)


def test_the_one_leaf_tree_has_exactly_one_index():
    root = ORACLE_TREE.root(1)
    assert verify_inclusion(ORACLE_LEAVES[0], 0, 1, [], root) is True
    for index in (1, -1, 2):
        assert verify_inclusion(ORACLE_LEAVES[0], index, 1, [], root) is False


def test_bool_and_non_integer_indexes_and_sizes_are_refused():
    root = ORACLE_TREE.root(2)
    proof = ORACLE_TREE.inclusion_proof(1, 2)
    assert verify_inclusion(ORACLE_LEAVES[1], 1, 2, proof, root)
    for index, size in ((True, 2), (1, 2.0), (1.0, 2), ("1", 2), (1, "2"), (None, 2)):
        assert verify_inclusion(ORACLE_LEAVES[1], index, size, proof, root) is False, (index, size)
    one = ORACLE_TREE.root(1)
    assert verify_inclusion(ORACLE_LEAVES[0], False, True, [], one) is False
    assert verify_inclusion(ORACLE_LEAVES[0], 0, True, [], one) is False


def test_malformed_proofs_and_roots_are_refused():
    size, index = 7, 3
    root = ORACLE_TREE.root(size)
    proof = ORACLE_TREE.inclusion_proof(index, size)
    leaf = ORACLE_LEAVES[index]
    assert verify_inclusion(leaf, index, size, proof, root)
    malformed = [
        b"".join(proof),  # bytes are a Sequence, but not of hashes
        "".join(p.hex() for p in proof),
        iter(proof),  # not a Sequence
        [p[:31] for p in proof],
        [*proof[:-1], proof[-1] + b"\x00"],
        [bytearray(p) for p in proof],
        [*proof[:-1], None],
    ]
    for bad in malformed:
        assert verify_inclusion(leaf, index, size, bad, root) is False, bad
    for bad_root in (root[:31], root + b"\x00", bytearray(root), root.hex(), None):
        assert verify_inclusion(leaf, index, size, proof, bad_root) is False
    assert verify_inclusion(bytearray(leaf), index, size, proof, root) is False


def _fold_left(leaf: bytes, proof: list[bytes]) -> bytes:
    """The root that index 0's path `proof` leads to (each step hashes the running node on the left)."""
    node = leaf_hash(leaf)
    for sibling in proof:
        node = node_hash(node, sibling)
    return node


def test_proofs_are_at_most_64_hashes_long():
    # Any root can be made to match a path: the length limit is what bounds the claimed tree size.
    leaf = b"leaf"
    proof64 = [hashlib.sha256(bytes([i])).digest() for i in range(64)]
    assert verify_inclusion(leaf, 0, 2**64, proof64, _fold_left(leaf, proof64)) is True
    proof65 = [*proof64, hashlib.sha256(b"extra").digest()]
    assert verify_inclusion(leaf, 0, 2**65, proof65, _fold_left(leaf, proof65)) is False
    first_root = EMPTY_ROOT
    assert verify_consistency(1, 2**65, first_root, first_root, proof65) is False


def test_consistency_arguments_bounds_and_types():
    first, second = 5, 11
    first_root, second_root = ORACLE_TREE.root(first), ORACLE_TREE.root(second)
    proof = ORACLE_TREE.consistency_proof(first, second)
    assert verify_consistency(first, second, first_root, second_root, proof)
    for f, s in ((True, second), (first, 11.0), (-first, second), (first, -second), (second, first)):
        assert verify_consistency(f, s, first_root, second_root, proof) is False, (f, s)
    assert verify_consistency(first, second, bytearray(first_root), second_root, proof) is False
    assert verify_consistency(first, second, first_root, second_root[:31], proof) is False
    assert verify_consistency(first, second, first_root, second_root, [p[:31] for p in proof]) is False
    assert verify_consistency(first, second, first_root, second_root, b"".join(proof)) is False
    # equal sizes: an empty proof and equal roots, nothing else
    assert verify_consistency(second, second, second_root, second_root, []) is True
    assert verify_consistency(second, second, second_root, second_root, [second_root]) is False
    assert verify_consistency(second, second, first_root, second_root, []) is False
    # an empty first tree: an empty proof and the empty-tree root
    assert verify_consistency(0, second, EMPTY_ROOT, second_root, []) is True
    assert verify_consistency(0, second, first_root, second_root, []) is False
    assert verify_consistency(0, second, EMPTY_ROOT, second_root, [second_root]) is False
    assert verify_consistency(first, second, first_root, second_root, []) is False


def test_a_large_tree_costs_one_hash_per_leaf_to_build_and_logarithmic_hashing_to_prove(monkeypatch):
    # Counted, not timed: building is O(n), a root O(log n) and a proof O(log² n) node hashes,
    # never a rehash of the leaves (which would cost about n).
    hashed = []
    real = merkle_module.node_hash
    monkeypatch.setattr(merkle_module, "node_hash", lambda left, right: hashed.append(1) or real(left, right))
    n = 50_000
    bits = n.bit_length()
    tree = MerkleTree(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n))
    assert tree.size == n and len(hashed) < n
    root = tree.root()
    for index in range(0, n, 997):
        leaf = hashlib.sha256(index.to_bytes(4, "big")).digest()
        hashed.clear()
        tree.root(index + 1)
        assert len(hashed) <= bits
        hashed.clear()
        proof = tree.inclusion_proof(index, n)
        assert len(hashed) <= bits * bits
        assert verify_inclusion(leaf, index, n, proof, root)
        for earlier in (index + 1, n // 3):
            hashed.clear()
            proof = tree.consistency_proof(earlier, n)
            assert len(hashed) <= bits * bits
            assert verify_consistency(earlier, n, tree.root(earlier), root, proof)


def test_tree_methods_name_what_they_refuse():
    tree = MerkleTree(leaves(5))
    for call, message in (
        (lambda: tree.root(6), "^size 6 is outside 0..5$"),
        (lambda: tree.root(-1), "^size -1 is outside 0..5$"),
        (lambda: tree.root(True), "^expected a whole number, got True$"),
        (lambda: tree.inclusion_proof(5, 5), "^need 0 <= index < size <= 5, got index 5, size 5$"),
        (lambda: tree.inclusion_proof(-1, 5), "^need 0 <= index < size <= 5, got index -1, size 5$"),
        (lambda: tree.inclusion_proof(0, 6), "^need 0 <= index < size <= 5, got index 0, size 6$"),
        (lambda: tree.inclusion_proof(0, 0), "^need 0 <= index < size <= 5, got index 0, size 0$"),
        (lambda: tree.inclusion_proof(0, "5"), "^expected a whole number, got '5'$"),
        (lambda: tree.consistency_proof(4, 3), "^need 0 <= first <= second <= 5, got first 4, second 3$"),
        (lambda: tree.consistency_proof(-1, 3), "^need 0 <= first <= second <= 5, got first -1, second 3$"),
        (lambda: tree.consistency_proof(1, 6), "^need 0 <= first <= second <= 5, got first 1, second 6$"),
        (lambda: MerkleTree(block_level=-1), "^block_level must be >= 0$"),
    ):
        with pytest.raises(ValueError, match=message):
            call()
    with pytest.raises(TypeError, match="^a leaf is bytes$"):
        tree.append("not bytes")
    assert MerkleTree(leaves(5), block_level=0).root() == tree.root()


def test_a_tree_keeps_about_two_hashes_per_leaf():
    n = 20_000
    hashes = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]
    tracemalloc.start()
    try:
        tree = MerkleTree(hashes)
        retained, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert tree.size == n
    assert retained <= 3 * 32 * n, retained / (32 * n)  # level 0 and the levels above: about 2 hashes a leaf


def test_a_block_read_back_serves_every_proof_inside_it_and_must_be_all_bytes():
    hashes = [hashlib.sha256(bytes([i])).digest() for i in range(16)]
    reads = []
    tree = MerkleTree(hashes, block_level=2, fetch=lambda start, end: reads.append((start, end)) or hashes[start:end])
    full = MerkleTree(hashes)
    assert [tree.inclusion_proof(i, 16) for i in (5, 4, 6)] == [full.inclusion_proof(i, 16) for i in (5, 4, 6)]
    assert reads == [(4, 8)]  # one read for the three proofs in block 1
    tree.fetch = lambda start, end: [*hashes[start:end - 1], "not bytes"]
    with pytest.raises(ValueError, match="^block 2: expected 4 leaves, got 4$"):
        tree.inclusion_proof(9, 16)


def test_bool_and_negative_sizes_never_make_equal_trees_consistent():
    root = ORACLE_TREE.root(1)
    assert verify_consistency(1, 1, root, root, []) is True
    for first, second in ((True, 1), (1, True), (True, True), (-1, -1), (-3, 1)):
        assert verify_consistency(first, second, root, root, []) is False, (first, second)


def test_an_empty_bytes_or_text_proof_is_not_an_empty_proof():
    root = ORACLE_TREE.root(1)
    assert verify_inclusion(ORACLE_LEAVES[0], 0, 1, [], root) is True
    for not_a_list in (b"", ""):
        assert verify_inclusion(ORACLE_LEAVES[0], 0, 1, not_a_list, root) is False, not_a_list
