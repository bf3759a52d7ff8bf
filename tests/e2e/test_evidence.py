"""EvidenceService over a real server: the chain, checkpoints, proofs, packs, tampering, exports."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import grpc
import nacl.signing
import pytest
import sqlalchemy as sa

from gavel.v1 import decision_pb2, evidence_pb2
from tests.e2e.helpers import b64url, expect_error, request

OK = grpc.StatusCode


# ---- an independent RFC 6962 / RFC 9162 inclusion and consistency verifier (from the RFC text)

def _leaf(d: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + d).digest()


def _node(a: bytes, b: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + a + b).digest()


def rfc_verify_inclusion(leaf_input: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    if index >= size:
        return False
    fn, sn, r = index, size - 1, _leaf(leaf_input)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def rfc_verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: list[bytes]) -> bool:
    if first == second:
        return not proof and first_root == second_root
    if first & (first - 1) == 0:  # a power of two: the first root is the first node of the path
        proof = [first_root, *proof]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    if not proof:
        return False
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


def open_c2sp_note(note: str, name: str, public_key: bytes) -> str:
    """Verify a C2SP signed note (Ed25519) from the spec, independently of Gavel's code."""
    body, sep, sigs = note.partition("\n\n")
    assert sep, "a signed note has a blank line before its signatures"
    body += "\n"
    key_hash = hashlib.sha256(name.encode() + b"\n\x01" + public_key).digest()[:4]
    for line in sigs.splitlines():
        prefix = f"\u2014 {name} "
        if line.startswith(prefix):
            raw = base64.b64decode(line[len(prefix):])
            if raw[:4] == key_hash:
                nacl.signing.VerifyKey(public_key).verify(body.encode(), raw[4:])
                return body
    raise AssertionError("no signature by that key")


async def jwks(h) -> dict:
    return json.loads((await h.evidence.GetPublicKeys(evidence_pb2.GetPublicKeysRequest(),
                                                      metadata=h.md("auditor"))).jwks_json)


async def events(h, who: str = "auditor", from_sequence: int = 1, count: int | None = None) -> list:
    out = []
    call = h.evidence.StreamEvents(evidence_pb2.StreamEventsRequest(from_sequence=from_sequence), metadata=h.md(who))
    try:
        async for e in call:
            out.append(e)
            if count is not None and len(out) >= count:
                break
    finally:
        call.cancel()
    return out


async def chain_size(h, who: str = "auditor") -> int:
    """Events already in the chain (the harness's seeded keys are events too)."""
    cp = await h.evidence.GetCheckpoint(evidence_pb2.GetCheckpointRequest(), metadata=h.md(who))
    return cp.tree_size


async def decide_some(h, n: int = 5) -> list:
    return [await h.decisions.Decide(request(amount=str(10 + i)), metadata=h.md("agent")) for i in range(n)]


async def test_every_change_is_a_chained_event_and_streams_live(harness) -> None:
    seeded = await events(harness, count=await chain_size(harness))
    assert {e.type for e in seeded} == {"key.created"}  # the harness's keys of acme/test
    base = len(seeded)
    decisions = await decide_some(harness, 3)
    await harness.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=decisions[0].decision_token),
                                         metadata=harness.md("agent"))
    got = await events(harness, from_sequence=base + 1, count=4)
    assert [e.sequence for e in got] == [base + 1, base + 2, base + 3, base + 4]
    assert [e.type for e in got] == ["decision.recorded"] * 3 + ["token.consumed"]
    prev = seeded[-1].hash
    for e in got:
        assert e.prev_hash == prev and e.hash == hashlib.sha256(prev + e.payload_json.encode()).digest()
        payload = json.loads(e.payload_json)
        assert json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False) == e.payload_json
        prev = e.hash
    assert json.loads(got[0].payload_json)["decision_id"] == decisions[0].decision_id
    assert decisions[0].evidence_event_id == got[0].event_id
    # live tail: a stream opened at the end sees the next decision
    tail = asyncio.create_task(events(harness, from_sequence=base + 5, count=1))
    await asyncio.sleep(0.3)
    new = await harness.decisions.Decide(request(), metadata=harness.md("agent"))
    (live,) = await asyncio.wait_for(tail, 5)
    assert live.sequence == base + 5 and json.loads(live.payload_json)["decision_id"] == new.decision_id
    # isolation: the other environment's chain is separate and starts at 1
    await harness.decisions.Decide(request(), metadata=harness.md("admin_live"))
    (first_live,) = await events(harness, who="admin_live", count=1)
    assert first_live.sequence == 1 and first_live.prev_hash == bytes(32)
    assert all(json.loads(e.payload_json)["environment"] == "live"
               for e in await events(harness, who="admin_live", count=await chain_size(harness, "admin_live")))


async def test_checkpoint_note_and_proofs_verify_independently(harness) -> None:
    base = await chain_size(harness)
    await decide_some(harness, 7 - base)
    cp1 = await harness.evidence.GetCheckpoint(evidence_pb2.GetCheckpointRequest(), metadata=harness.md("auditor"))
    assert cp1.tree_size == 7 and cp1.origin == "gavel/ledger/acme/test"
    key = next(k for k in (await jwks(harness))["keys"] if k["kid"] == cp1.key_id)
    body = open_c2sp_note(cp1.note, cp1.origin, b64url(key["x"]))
    lines = body.splitlines()
    assert lines[:3] == [cp1.origin, "7", base64.b64encode(cp1.root_hash).decode()]
    nacl.signing.VerifyKey(b64url(key["x"])).verify(body.encode(), cp1.signature)
    leaves = [e.hash for e in await events(harness, count=7)]
    for seq in range(1, 8):
        p = await harness.evidence.GetInclusionProof(evidence_pb2.GetInclusionProofRequest(sequence=seq),
                                                     metadata=harness.md("auditor"))
        assert p.leaf_index == seq - 1 and p.tree_size == 7 and p.leaf_hash == _leaf(leaves[seq - 1])
        assert rfc_verify_inclusion(leaves[seq - 1], seq - 1, 7, list(p.audit_path), cp1.root_hash)
    await decide_some(harness, 6)
    cp2 = await harness.evidence.GetCheckpoint(evidence_pb2.GetCheckpointRequest(), metadata=harness.md("auditor"))
    assert cp2.tree_size == 13
    c = await harness.evidence.GetConsistencyProof(evidence_pb2.GetConsistencyProofRequest(first_size=7),
                                                   metadata=harness.md("auditor"))
    assert c.second_size == 13
    assert rfc_verify_consistency(7, 13, cp1.root_hash, cp2.root_hash, list(c.proof))
    assert not rfc_verify_consistency(7, 13, cp1.root_hash, cp1.root_hash, list(c.proof))
    await expect_error(harness.evidence.GetInclusionProof(
        evidence_pb2.GetInclusionProofRequest(sequence=99), metadata=harness.md("auditor")),
        OK.INVALID_ARGUMENT, "INVALID_REQUEST")
    # the same checkpoint is returned while nothing new was committed
    again = await harness.evidence.GetCheckpoint(evidence_pb2.GetCheckpointRequest(), metadata=harness.md("auditor"))
    assert again.root_hash == cp2.root_hash and again.tree_size == 13


async def _pack(h, decision_id: str) -> dict:
    r = await h.evidence.GetEvidencePack(evidence_pb2.GetEvidencePackRequest(decision_id=decision_id),
                                         metadata=h.md("auditor"))
    return json.loads(r.pack_json)


def gavel_verify(tmp_path, pack: dict, keys: dict) -> subprocess.CompletedProcess:
    (tmp_path / "pack.json").write_text(json.dumps(pack))
    (tmp_path / "jwks.json").write_text(json.dumps(keys))
    return subprocess.run([sys.executable, "-m", "gavel.cli", "verify", str(tmp_path / "pack.json"), "--jwks",
                           str(tmp_path / "jwks.json")], capture_output=True, text=True, timeout=60)


async def test_evidence_pack_verifies_offline_and_detects_tampering(harness, tmp_path) -> None:
    d = await harness.decisions.Decide(request(amount="250"), metadata=harness.md("agent"))
    await harness.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=d.decision_token),
                                         metadata=harness.md("agent"))
    await harness.decisions.ReportExecution(decision_pb2.ReportExecutionRequest(
        decision_id=d.decision_id, decision_token=d.decision_token, status=decision_pb2.EXECUTION_STATUS_SUCCEEDED,
        amount="250.00", currency="USD"), metadata=harness.md("agent"))
    pack = await _pack(harness, d.decision_id)
    assert [e["type"] for e in pack["events"]] == ["decision.recorded", "token.consumed", "execution.reported"]
    assert pack["decision"]["decision_id"] == d.decision_id and pack["decision"]["decision_token"] == ""
    assert pack["policy"]["rules"][0]["rule"] == "payments.small" and "rule small" in pack["policy"]["rules"][0]["text"]
    controls = {c["id"]: c["status"] for c in pack["compliance"]}
    assert controls == {"GAVEL-01": "met", "GAVEL-02": "not_applicable", "GAVEL-03": "not_applicable",
                        "GAVEL-04": "met", "GAVEL-05": "met", "GAVEL-06": "met"}
    keys = await jwks(harness)
    ok = gavel_verify(tmp_path, pack, keys)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for tamper in (
        lambda p: p["decision"].__setitem__("outcome", "deny"),
        lambda p: p["events"][1].__setitem__("payload_json", p["events"][1]["payload_json"].replace("token", "t0ken")),
        lambda p: p["proof"]["inclusion"][0]["audit_path"].__setitem__(0, "00" * 32),
    ):
        bad = json.loads(json.dumps(pack))
        tamper(bad)
        out = gavel_verify(tmp_path, bad, keys)
        assert out.returncode == 1, out.stdout
    await expect_error(harness.evidence.GetEvidencePack(evidence_pb2.GetEvidencePackRequest(
        decision_id=d.decision_id), metadata=harness.md("globex_test")), OK.NOT_FOUND, "NOT_FOUND")


async def test_pack_verifies_after_signing_key_rotation(harness, tmp_path) -> None:
    d = await harness.decisions.Decide(request(), metadata=harness.md("agent"))
    old = await _pack(harness, d.decision_id)
    harness.runtime.signing.rotate(datetime.now(UTC), timedelta(days=30))
    await decide_some(harness, 2)
    new = await _pack(harness, d.decision_id)  # a newer checkpoint, signed by the new key
    keys = await jwks(harness)
    assert len(keys["keys"]) == 2
    for pack in (old, new):
        out = gavel_verify(tmp_path, pack, keys)
        assert out.returncode == 0, out.stdout
    assert old["signature"]["kid"] != new["signature"]["kid"]


def _db(h):
    return sa.create_engine(h.runtime.settings.store_url)


@pytest.mark.parametrize(("name", "tamper", "first_bad"), [
    ("edit", "UPDATE ledger_events SET payload_json = payload_json || ' ' WHERE sequence = 3 "
             "AND environment = 'test'", 3),
    ("delete", "DELETE FROM ledger_events WHERE sequence = 4 AND environment = 'test'", 4),
    ("reorder", "UPDATE ledger_events SET sequence = -sequence WHERE sequence IN (2, 5) AND environment = 'test';"
                "UPDATE ledger_events SET sequence = CASE sequence WHEN -2 THEN 5 WHEN -5 THEN 2 END "
                "WHERE sequence < 0 AND environment = 'test'", 2),
    ("truncate", "DELETE FROM ledger_events WHERE sequence > 4 AND environment = 'test'", 5),
])
async def test_verify_ledger_finds_tampering(harness, tmp_path, name, tamper, first_bad) -> None:
    await decide_some(harness, 6 - await chain_size(harness))
    ok = await harness.evidence.VerifyLedger(evidence_pb2.VerifyLedgerRequest(), metadata=harness.md("auditor"))
    assert ok.ok and ok.checked == 6 and ok.first_bad_sequence == 0
    d = await harness.decisions.Decide(request(), metadata=harness.md("agent"))
    await _pack(harness, d.decision_id)  # makes a checkpoint over all 7 events
    engine = _db(harness)
    with engine.begin() as conn:
        for statement in tamper.split(";"):
            conn.execute(sa.text(statement))
    engine.dispose()
    bad = await harness.evidence.VerifyLedger(evidence_pb2.VerifyLedgerRequest(), metadata=harness.md("auditor"))
    assert not bad.ok and bad.first_bad_sequence == first_bad, bad.message
    assert bad.message


async def test_concurrent_writers_never_fork_the_chain(harness) -> None:
    base = await chain_size(harness)
    results = await asyncio.gather(*[harness.decisions.Decide(request(amount=str(i % 50 + 1)),
                                                              metadata=harness.md("agent")) for i in range(60)])
    assert len({d.evidence_event_id for d in results}) == 60
    got = await events(harness, from_sequence=base + 1, count=60)
    assert [e.sequence for e in got] == list(range(base + 1, base + 61))
    v = await harness.evidence.VerifyLedger(evidence_pb2.VerifyLedgerRequest(), metadata=harness.md("auditor"))
    assert v.ok and v.checked == base + 60


async def _export(h, **kw) -> str:
    chunks = []
    async for c in h.evidence.ExportEvidence(evidence_pb2.ExportEvidenceRequest(**kw), metadata=h.md("auditor")):
        chunks.append(c.data)
    return b"".join(chunks).decode()


async def test_exports_in_every_view_and_format(harness) -> None:
    await decide_some(harness, 3)
    await harness.decisions.Decide(request(amount="5000"), metadata=harness.md("agent"))
    lines = (await _export(harness)).splitlines()
    assert len(lines) == 4 and json.loads(lines[-1])["outcome"] == "require_approval"
    for view, column in (("sox", "authorization_result"), ("eu_ai_act", "human_oversight"), ("rbi", "maker_id"),
                         ("generic", "reason_code")):
        text = await _export(harness, format=evidence_pb2.EXPORT_FORMAT_CSV, view=view)
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 4 and column in rows[0], view
    eu = list(csv.DictReader(io.StringIO(await _export(harness, format=evidence_pb2.EXPORT_FORMAT_CSV,
                                                       view="eu_ai_act"))))
    assert eu[-1]["human_oversight"] == "required"
    future = evidence_pb2.ExportEvidenceRequest(view="generic")
    future.start_time.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
    assert await _export(harness, view="generic", start_time=future.start_time) == ""
    empty_csv = await _export(harness, format=evidence_pb2.EXPORT_FORMAT_CSV, start_time=future.start_time)
    assert empty_csv.startswith("decision_id,")
    await expect_error(_export(harness, view="nope"), OK.INVALID_ARGUMENT, "INVALID_REQUEST")


async def test_evidence_needs_the_right_role(harness) -> None:
    await expect_error(harness.evidence.VerifyLedger(evidence_pb2.VerifyLedgerRequest(), metadata=harness.md("agent")),
                       OK.PERMISSION_DENIED, "FORBIDDEN")
    await expect_error(harness.evidence.GetCheckpoint(evidence_pb2.GetCheckpointRequest(),
                                                      metadata=harness.md("finance")), OK.PERMISSION_DENIED,
                       "FORBIDDEN")




@pytest.mark.parametrize("settings_overrides", [{"checkpoint_every_seconds": 0.3, "checkpoint_every_events": 1000}])
async def test_checkpoints_are_made_on_a_schedule(harness) -> None:
    await decide_some(harness, 3)
    for _ in range(50):
        latest = await harness.runtime.store.read(lambda uow: uow.checkpoints.latest("acme", "test"))
        if latest is not None and latest.tree_size >= 3:
            break
        await asyncio.sleep(0.1)
    assert latest is not None and latest.tree_size >= 3  # nobody asked: the scheduler made it
    assert latest.note.startswith("gavel/ledger/acme/test\n")
