"""The server's Merkle cache reads blocks of event hashes back from the store for its proofs."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from gavel.adapters.db import SqlStore, migrate, sqlite_url
from gavel.app import ledger
from gavel.app.evidence import MerkleCache
from gavel.ledger.merkle import MerkleTree

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_proofs_from_the_bounded_cache_match_the_whole_tree(tmp_path) -> None:
    url = sqlite_url(tmp_path / "gavel.db")
    migrate(url)
    store = SqlStore(url)
    for n in range(37):
        store.run_sync(lambda uow, n=n: ledger.record(uow, "ten_a", "test", type="agent.status_changed",
                                                      subject=f"agent-{n}", data={"n": n}, at=NOW,
                                                      random_bytes=os.urandom))
    hashes = store.run_sync(lambda uow: uow.ledger.hashes("ten_a", "test", 1, 37))
    whole = MerkleTree(hashes)
    cache = MerkleCache(block_level=2)
    for size in (1, 5, 16, 37):
        assert store.run_sync(lambda uow, s=size: cache.root(uow, "ten_a", "test", s)) == whole.root(size)
    for index in (0, 3, 17, 36):
        proof = store.run_sync(lambda uow, i=index: cache.inclusion(uow, "ten_a", "test", i, 37))
        assert proof == whole.inclusion_proof(index, 37)
    assert store.run_sync(lambda uow: cache.consistency(uow, "ten_a", "test", 9, 37)) == whole.consistency_proof(9, 37)
    assert len(cache._trees[("ten_a", "test")]._levels[0]) == (37 >> 2) * 32  # one root per block of 4 kept
