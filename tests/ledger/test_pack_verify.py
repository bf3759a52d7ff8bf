"""Evidence packs: sealing, every verifier check, tampering, key rotation, and `gavel verify`."""

import base64
import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from gavel.cli_verify import main
from gavel.crypto.keys import Ed25519KeyPair, KeySet, b64url_decode, b64url_encode
from gavel.ledger.canonical import JsonNumber, canonical_bytes, canonical_json
from gavel.ledger.chain import ZERO_HASH, Link, event_hash
from gavel.ledger.checkpoint import checkpoint_body, sign_note
from gavel.ledger.merkle import MerkleTree
from gavel.ledger.pack import (
    PACK_FORMAT,
    checkpoint_record,
    event_record,
    inclusion_record,
    pack_fingerprint,
    seal,
)
from gavel.ledger.verify import Check, all_ok, as_jwks, load_jwks, load_pack, verify_pack

ORIGIN = "gavel.example/ledger/acme/prod"
LEDGER_KEY = Ed25519KeyPair.from_seed(bytes([21]) * 32)
OTHER_KEY = Ed25519KeyPair.from_seed(bytes([22]) * 32)
NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
DECISION_ID = "dec_01HX"

CHECK_NAMES = [
    "format",
    "fingerprint",
    "signature",
    "events",
    "decision",
    "decision.recorded",
    "checkpoint",
    "inclusion",
]

# Sequence → payload. The pack's decision is named by events 3, 5, 6 and 9; 1, 2, 4, 7, 8, 10 are other business.
LEDGER = {
    1: {"type": "policy.published", "bundle_hash": "sha256:aa", "bundle_version": "v1"},
    2: {"type": "agent.registered", "agent_id": "agt_1"},
    3: {  # the service's shape: the outcome sits in `data`
        "type": "decision.recorded",
        "decision_id": DECISION_ID,
        "data": {"outcome": "approval_required", "amount": Decimal("1200.50"), "confidence": JsonNumber(0.25)},
    },
    4: {"type": "decision.recorded", "decision_id": "dec_other", "outcome": "allow"},
    5: {"type": "approval.requested", "decision_id": DECISION_ID, "data": {"approvers": ["alice", "bob"]}},
    6: {"type": "approval.granted", "decision_id": DECISION_ID, "by": "alice", "note": "ok ✓ — «fine»"},
    7: {"type": "token.issued", "decision_id": "dec_other"},
    8: {"type": "agent.suspended", "agent_id": "agt_9"},
    9: {"type": "execution.reported", "decision_id": DECISION_ID, "status": "succeeded"},
    10: {"type": "decision.recorded", "decision_id": "dec_third", "outcome": "deny"},
}
PACK_SEQUENCES = (3, 5, 6, 9)


def build_ledger(ledger: dict | None = None) -> tuple[list[Link], MerkleTree]:
    links, prev = [], ZERO_HASH
    for sequence, payload in (ledger or LEDGER).items():
        payload_json = canonical_json(payload)
        digest = event_hash(prev, payload_json)
        links.append(Link(sequence, payload_json, prev, digest))
        prev = digest
    return links, MerkleTree(link.hash for link in links)


def build_pack(
    *, signing_key: Ed25519KeyPair = LEDGER_KEY, log_key: Ed25519KeyPair = LEDGER_KEY, ledger: dict | None = None
) -> dict:
    ledger = ledger or LEDGER
    links, tree = build_ledger(ledger)
    size = tree.size
    note, _ = sign_note(checkpoint_body(ORIGIN, size, tree.root()), ORIGIN, log_key)
    pack = {
        "format": PACK_FORMAT,
        "generated_at": "2025-03-01T09:30:00Z",
        "tenant": "acme",
        "environment": "prod",
        "decision": {"decision_id": DECISION_ID, "outcome": "approval_required", "reasons": ["over limit"]},
        "request": {"action": "payments.send", "amount": Decimal("1200.50"), "args": {"ratio": JsonNumber(1.5)}},
        "facts": {"balance": "5000"},
        "policy": {
            "bundle_hash": "sha256:aa",
            "bundle_version": "v1",
            "rules": [{"rule": "payments.limit", "location": "payments.rules:12", "text": "deny if amount > 1000"}],
        },
        "agent": {"agent_id": "agt_1"},
        "token": None,
        "execution": {"status": "succeeded"},
        "approvals": [{"by": "alice"}],
        "sod": {"ok": True},
        "risk": {"score": "0.7"},
        "compliance": [{"id": "eu-ai-act-14", "name": "Human oversight", "status": "met", "evidence": "approval 6"}],
        "events": [event_record(links[s - 1], ledger[s]["type"]) for s in PACK_SEQUENCES],
        "proof": {
            "checkpoint": checkpoint_record(ORIGIN, size, tree.root(), "2025-03-01T09:29:59Z", log_key.kid, note),
            "inclusion": [inclusion_record(s, size, tree.inclusion_proof(s - 1, size)) for s in PACK_SEQUENCES],
        },
    }
    return seal(pack, signing_key)


def jwks_of(*keys: Ed25519KeyPair) -> dict:
    return {"keys": [key.public_jwk() for key in keys]}


JWKS = jwks_of(LEDGER_KEY)


def results(checks: list[Check]) -> dict[str, bool]:
    return {check.name: check.ok for check in checks}


def failed(checks: list[Check]) -> set[str]:
    return {check.name for check in checks if not check.ok}


def detail(checks: list[Check], name: str) -> str:
    return next(check.detail for check in checks if check.name == name)


def reseal_bypassing(pack: dict, key: Ed25519KeyPair = OTHER_KEY) -> dict:
    return seal(pack, key)


# --- sealing ---------------------------------------------------------------------------------


def test_seal_adds_fingerprint_and_a_signature_covering_it():
    pack = build_pack()
    unsealed = {k: v for k, v in pack.items() if k not in ("fingerprint", "signature")}
    assert pack["fingerprint"] == "sha256:" + __import__("hashlib").sha256(canonical_bytes(unsealed)).hexdigest()
    assert pack["fingerprint"] == pack_fingerprint(pack) == pack_fingerprint(unsealed)
    signature = pack["signature"]
    assert signature["alg"] == "EdDSA" and signature["kid"] == LEDGER_KEY.kid
    signed = canonical_bytes({k: v for k, v in pack.items() if k != "signature"})
    assert LEDGER_KEY.public().verify(signed, b64url_decode(signature["sig"]))


def test_seal_copies_and_replaces_old_seals():
    pack = build_pack()
    original = copy.deepcopy(pack)
    resealed = seal(pack, OTHER_KEY)
    assert pack == original
    assert resealed["signature"]["kid"] == OTHER_KEY.kid and resealed["fingerprint"] == pack["fingerprint"]
    resealed["decision"]["outcome"] = "allow"
    assert pack["decision"]["outcome"] == "approval_required"


def test_seal_refuses_floats():
    with pytest.raises(TypeError, match="binary floats do not hold decimal amounts exactly"):
        seal({"format": PACK_FORMAT, "risk": {"score": 0.7}}, LEDGER_KEY)


# --- verification ----------------------------------------------------------------------------


def test_sealed_pack_verifies():
    checks = verify_pack(build_pack(), JWKS)
    assert [check.name for check in checks] == CHECK_NAMES
    assert all_ok(checks), [c for c in checks if not c.ok]
    assert detail(checks, "signature") == f"EdDSA by key {LEDGER_KEY.kid}"
    assert "3, 5, 6, 9" in detail(checks, "events") and "1 link" in detail(checks, "events")
    assert "event 3 records decision" in detail(checks, "decision.recorded")
    assert "tree size 10" in detail(checks, "checkpoint")
    assert "4 events in the signed tree of size 10" in detail(checks, "inclusion")


def test_pack_verifies_after_a_json_round_trip_and_pretty_printing():
    text = canonical_json(build_pack())
    pack = load_pack(text)
    assert all_ok(verify_pack(pack, JWKS))
    pretty = json.dumps(pack, indent=2, ensure_ascii=False)
    assert all_ok(verify_pack(load_pack(pretty), load_jwks(json.dumps(JWKS))))


def test_all_ok_needs_at_least_one_check():
    assert not all_ok([])
    assert all_ok([Check("x", True, "")])
    assert not all_ok([Check("x", True, ""), Check("y", False, "")])


def test_tampered_decision_field():
    pack = build_pack()
    pack["decision"]["outcome"] = "allow"
    checks = verify_pack(pack, JWKS)
    assert failed(checks) == {"fingerprint", "signature", "decision.recorded"}
    assert "records outcome `approval_required` but the pack says `allow`" in detail(checks, "decision.recorded")


def test_recorded_outcome_may_sit_on_top_of_the_payload():
    flat = dict(LEDGER)
    flat[3] = {"type": "decision.recorded", "decision_id": DECISION_ID, "outcome": "approval_required"}
    assert all_ok(verify_pack(build_pack(ledger=flat), JWKS))
    flat[3] = {"type": "decision.recorded", "decision_id": DECISION_ID, "outcome": "allow"}
    checks = verify_pack(build_pack(ledger=flat), JWKS)
    assert failed(checks) == {"decision.recorded"}


def test_tampered_decision_id_resealed_by_an_attacker_key():
    pack = build_pack()
    pack["decision"]["decision_id"] = "dec_other"
    checks = verify_pack(reseal_bypassing(pack), JWKS)
    assert failed(checks) == {"signature", "decision", "decision.recorded"}
    assert f"no key {OTHER_KEY.kid} in the JWKS" in detail(checks, "signature")


def test_tampered_event_payload():
    pack = build_pack()
    event = pack["events"][1]
    event["payload_json"] = event["payload_json"].replace("alice", "mallory")
    checks = verify_pack(pack, JWKS)
    assert failed(checks) == {"fingerprint", "signature", "events"}
    assert "event 5: hash does not match its payload" in detail(checks, "events")


@pytest.mark.parametrize(("position", "expected"), [(1, {"events", "inclusion"}), (2, {"inclusion"})])
def test_tampered_event_even_when_resealed_with_the_ledger_key(position, expected):
    # Whoever holds the sealing key still cannot forge an event: the signed checkpoint pins every
    # event hash. Event 5 is also linked to event 6 in the pack; event 6 is followed by event 9.
    pack = build_pack()
    event = pack["events"][position]
    forged = event["payload_json"].replace("alice", "mallory")
    assert forged != event["payload_json"]
    event["payload_json"] = forged
    event["hash"] = event_hash(bytes.fromhex(event["prev_hash"]), forged).hex()
    checks = verify_pack(seal(pack, LEDGER_KEY), JWKS)
    assert failed(checks) == expected
    sequence = event["sequence"]
    assert f"event {sequence}: the audit path does not lead to the checkpoint root" in detail(checks, "inclusion")
    if "events" in expected:
        broken_link = f"event {sequence + 1}: prev_hash does not match the hash of event {sequence}"
        assert broken_link in detail(checks, "events")


def test_broken_link_between_consecutive_events():
    pack = build_pack()
    pack["events"][2]["prev_hash"] = "00" * 32
    pack["events"][2]["hash"] = event_hash(bytes(32), pack["events"][2]["payload_json"]).hex()
    checks = verify_pack(seal(pack, LEDGER_KEY), JWKS)
    assert "events" in failed(checks)
    assert "event 6: prev_hash does not match the hash of event 5" in detail(checks, "events")


def test_edited_non_canonical_payload_reports_both_problems():
    pack = build_pack()
    pack["events"][3]["payload_json"] = pack["events"][3]["payload_json"].replace(",", ", ")
    checks = verify_pack(seal(pack, LEDGER_KEY), JWKS)
    assert failed(checks) == {"events"}
    assert "event 9: hash does not match its payload" in detail(checks, "events")
    assert "event 9: payload_json is not canonical JSON" in detail(checks, "events")


def test_events_listed_out_of_order():
    pack = build_pack()
    pack["events"][0], pack["events"][1] = pack["events"][1], pack["events"][0]
    checks = verify_pack(seal(pack, LEDGER_KEY), JWKS)
    assert failed(checks) == {"events"}
    assert "event 3 is listed after event 5: out of order or twice" in detail(checks, "events")


def test_first_event_must_start_from_zero_hash():
    ledger = {1: {"type": "decision.recorded", "decision_id": DECISION_ID, "data": {"outcome": "approval_required"}}}
    links, tree = build_ledger(ledger)
    assert links[0].prev_hash == ZERO_HASH
    forged_prev = bytes([1]) * 32
    forged = Link(1, links[0].payload_json, forged_prev, event_hash(forged_prev, links[0].payload_json))
    pack = build_pack()
    pack["events"] = [event_record(forged, "decision.recorded")]
    checks = verify_pack(seal(pack, LEDGER_KEY), JWKS)
    assert "event 1: prev_hash is not the hash the chain should start from" in detail(checks, "events")


def test_non_canonical_payload():
    pack = build_pack()
    event = pack["events"][0]
    spaced = event["payload_json"].replace(",", ", ")
    event["payload_json"] = spaced
    event["hash"] = event_hash(bytes.fromhex(event["prev_hash"]), spaced).hex()
    checks = verify_pack(seal(pack, LEDGER_KEY), JWKS)
    assert "event 3: payload_json is not canonical JSON" in detail(checks, "events")


def test_event_type_disagreeing_with_its_payload():
    pack = build_pack()
    pack["events"][1]["type"] = "approval.granted"
    checks = verify_pack(seal(pack, LEDGER_KEY), JWKS)
    assert failed(checks) == {"decision"}
    assert "event 5: type is `approval.granted` but its payload says `approval.requested`" in detail(checks, "decision")


def test_event_about_another_decision():
    links, _ = build_ledger()
    pack = build_pack()
    pack["events"].insert(1, event_record(links[3], "decision.recorded"))
    checks = verify_pack(seal(pack, LEDGER_KEY), JWKS)
    assert "event 4 is about decision `dec_other`" in detail(checks, "decision")
    assert "event 4 has no inclusion proof" in detail(checks, "inclusion")


def test_missing_decision_recorded_event():
    pack = build_pack()
    del pack["events"][0]
    checks = verify_pack(seal(pack, LEDGER_KEY), JWKS)
    assert failed(checks) == {"decision.recorded"}
    assert f"no decision.recorded event for decision `{DECISION_ID}`" in detail(checks, "decision.recorded")


def test_tampered_audit_path_element():
    pack = build_pack()
    path = pack["proof"]["inclusion"][2]["audit_path"]
    path[1] = ("0" if path[1][0] != "0" else "1") + path[1][1:]
    checks = verify_pack(pack, JWKS)
    assert failed(checks) == {"fingerprint", "signature", "inclusion"}
    assert "event 6: the audit path does not lead to the checkpoint root" in detail(checks, "inclusion")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("leaf_index", 5, "leaf_index is 5, not sequence − 1 = 2"),
        ("tree_size", 9, "the proof is for tree size 9, not 10"),
        ("audit_path", ["zz"], "audit_path is not a list"),
    ],
)
def test_malformed_inclusion_entries(field, value, expected):
    pack = build_pack()
    pack["proof"]["inclusion"][0][field] = value
    checks = verify_pack(seal(pack, LEDGER_KEY), JWKS)
    assert failed(checks) == {"inclusion"}
    assert expected in detail(checks, "inclusion")


def test_tampered_note():
    pack = build_pack()
    note = pack["proof"]["checkpoint"]["note"]
    pack["proof"]["checkpoint"]["note"] = note.replace("\n10\n", "\n11\n", 1)
    checks = verify_pack(pack, JWKS)
    assert failed(checks) == {"fingerprint", "signature", "checkpoint", "inclusion"}
    assert "does not verify" in detail(checks, "checkpoint")
    assert "not trusted" in detail(checks, "inclusion")


def test_checkpoint_fields_must_match_the_signed_note():
    pack = build_pack()
    pack["proof"]["checkpoint"]["root_hash"] = base64.b64encode(bytes(32)).decode()
    checks = verify_pack(seal(pack, LEDGER_KEY), JWKS)
    assert {"checkpoint", "inclusion"} <= failed(checks)
    assert "but proof.checkpoint says" in detail(checks, "checkpoint")


def test_checkpoint_signed_by_a_key_outside_the_jwks():
    pack = build_pack(log_key=OTHER_KEY)
    checks = verify_pack(pack, JWKS)
    assert failed(checks) == {"checkpoint", "inclusion"}
    assert f"no key {OTHER_KEY.kid}" in detail(checks, "checkpoint")
    assert all_ok(verify_pack(pack, jwks_of(LEDGER_KEY, OTHER_KEY)))


def test_checkpoint_key_id_naming_a_different_trusted_key():
    pack = build_pack()
    pack["proof"]["checkpoint"]["key_id"] = OTHER_KEY.kid
    checks = verify_pack(seal(pack, LEDGER_KEY), jwks_of(LEDGER_KEY, OTHER_KEY))
    assert failed(checks) == {"checkpoint", "inclusion"}
    assert "no signature by" in detail(checks, "checkpoint")


def test_tampered_signature():
    pack = build_pack()
    sig = bytearray(b64url_decode(pack["signature"]["sig"]))
    sig[0] ^= 1
    pack["signature"]["sig"] = b64url_encode(bytes(sig))
    checks = verify_pack(pack, JWKS)
    assert failed(checks) == {"signature"}
    assert "does not verify" in detail(checks, "signature")


def test_tampered_fingerprint():
    pack = build_pack()
    pack["fingerprint"] = "sha256:" + "0" * 64
    checks = verify_pack(pack, JWKS)
    assert failed(checks) == {"fingerprint", "signature"}
    assert "hashes to sha256:" in detail(checks, "fingerprint")


def test_kid_pointing_to_an_unknown_key():
    pack = build_pack()
    pack["signature"]["kid"] = OTHER_KEY.kid
    checks = verify_pack(pack, JWKS)
    assert failed(checks) == {"signature"}
    assert f"no key {OTHER_KEY.kid} in the JWKS" in detail(checks, "signature")


@pytest.mark.parametrize("alg", ["none", "HS256", "ES256", None])
def test_only_eddsa_is_accepted(alg):
    pack = build_pack()
    pack["signature"]["alg"] = alg
    checks = verify_pack(pack, JWKS)
    assert failed(checks) == {"signature"}
    assert "only EdDSA is accepted" in detail(checks, "signature")


def test_keys_are_never_taken_from_the_pack():
    pack = build_pack(signing_key=OTHER_KEY, log_key=OTHER_KEY)
    pack["jwks"] = jwks_of(OTHER_KEY)
    pack = seal(pack, OTHER_KEY)
    checks = verify_pack(pack, JWKS)
    assert failed(checks) == {"signature", "checkpoint", "inclusion"}


def test_pack_sealed_with_a_key_later_rotated_still_verifies_while_the_jwks_keeps_it():
    old_key, new_key = LEDGER_KEY, Ed25519KeyPair.from_seed(bytes([23]) * 32)
    pack = build_pack(signing_key=old_key, log_key=old_key)
    keys = KeySet(old_key).rotate(new_key, NOW, keep_for=timedelta(days=365))
    jwks_after_rotation = keys.jwks(NOW + timedelta(days=1))
    assert [jwk["kid"] for jwk in jwks_after_rotation["keys"]] == [new_key.kid, old_key.kid]
    assert all_ok(verify_pack(pack, jwks_after_rotation))
    # Once the retired key leaves the JWKS, the pack can no longer be checked against it.
    checks = verify_pack(pack, keys.jwks(NOW + timedelta(days=400)))
    assert failed(checks) == {"signature", "checkpoint", "inclusion"}


def test_unknown_format():
    pack = build_pack()
    pack["format"] = "gavel.evidence-pack/2"
    checks = verify_pack(seal(pack, LEDGER_KEY), JWKS)
    assert failed(checks) == {"format"}
    assert "unknown format `gavel.evidence-pack/2`" in detail(checks, "format")


def test_unknown_keys_are_ignored_but_covered_by_the_seal():
    pack = build_pack()
    pack["extra"] = {"anything": [1, 2]}
    assert failed(verify_pack(pack, JWKS)) == {"fingerprint", "signature"}
    assert all_ok(verify_pack(seal(pack, LEDGER_KEY), JWKS))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda p: p.pop("events"),
        lambda p: p.__setitem__("events", "nope"),
        lambda p: p["events"][0].__setitem__("hash", "XYZ"),
        lambda p: p["events"][0].__setitem__("sequence", True),
        lambda p: p.pop("proof"),
        lambda p: p["proof"].__setitem__("inclusion", {}),
        lambda p: p["proof"]["checkpoint"].__setitem__("tree_size", "10"),
        lambda p: p["proof"]["checkpoint"].__setitem__("root_hash", "not base64!"),
        lambda p: p["proof"]["checkpoint"].__setitem__("origin", "has space"),
        lambda p: p.__setitem__("decision", None),
        lambda p: p.__setitem__("signature", "sig"),
        lambda p: p["signature"].__setitem__("sig", "not base64url!"),
        lambda p: p.__setitem__("risk", {"score": 0.7}),
    ],
)
def test_malformed_packs_fail_checks_without_raising(mangle):
    pack = build_pack()
    mangle(pack)
    checks = verify_pack(pack, JWKS)
    assert [check.name for check in checks] == CHECK_NAMES
    assert not all_ok(checks)


def test_not_a_mapping():
    assert verify_pack([], JWKS) == [Check("format", False, "the pack is not a JSON object")]


def test_jwks_entries_that_are_not_usable():
    pack = build_pack()
    bad = dict(LEDGER_KEY.public_jwk(), alg="RS256")
    checks = verify_pack(pack, {"keys": [bad]})
    assert "cannot be used" in detail(checks, "signature")
    kidless = {k: v for k, v in LEDGER_KEY.public_jwk().items() if k != "kid"}
    rsa = {"kty": "RSA", "n": "AQAB", "e": "AQAB"}
    assert all_ok(verify_pack(pack, {"keys": [rsa, kidless]}))
    assert not all_ok(verify_pack(pack, {"nokeys": []}))


def test_load_jwks_errors_are_clear():
    assert load_jwks(json.dumps(JWKS)) == JWKS
    assert load_jwks(json.dumps(LEDGER_KEY.public_jwk())) == JWKS  # a single JWK is accepted
    for text, message in [
        ("{", "not valid JSON"),
        ("[]", "a JWKS is a JSON object with a `keys` array"),
        ('{"keys": []}', "no keys"),
        ('{"keys": [1]}', "key 1 in the JWKS is not a JSON object"),
        ('{"keys": [], "keys": []}', "duplicate member name"),
    ]:
        with pytest.raises(ValueError, match=message):
            load_jwks(text)
    with pytest.raises(ValueError, match="^a JWKS is a JSON object with a `keys` array$"):
        as_jwks(None)


def test_load_pack_is_strict():
    for text, message in (("[1]", "is not a JSON object"), ("{", "is not valid JSON: Expecting property name"),
                          ('{"a": NaN}', "is not valid JSON: NaN is not JSON"),
                          ('{"a": 1, "a": 2}', "is not valid JSON: duplicate member name")):
        with pytest.raises(ValueError, match=f"^the pack {message}"):
            load_pack(text)


# --- the command line ------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path):
    pack_path = tmp_path / "pack.json"
    jwks_path = tmp_path / "jwks.json"
    pack_path.write_text(canonical_json(build_pack()), encoding="utf-8")
    jwks_path.write_text(json.dumps(JWKS), encoding="utf-8")
    return pack_path, jwks_path


def test_cli_verified(files, capsys):
    pack_path, jwks_path = files
    assert main([str(pack_path), "--jwks", str(jwks_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(CHECK_NAMES) + 1
    assert lines[1] == f"ok   fingerprint {build_pack()['fingerprint']}"
    assert all(line.startswith("ok   ") for line in lines[:-1])
    assert lines[-1] == f"VERIFIED: all 8 checks hold (keys from {jwks_path})"


def test_cli_failed_check(files, capsys):
    pack_path, jwks_path = files
    pack = json.loads(pack_path.read_text())
    pack["signature"]["kid"] = OTHER_KEY.kid
    pack_path.write_text(json.dumps(pack))
    assert main([str(pack_path), "--jwks", str(jwks_path)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL signature: no key {OTHER_KEY.kid} in the JWKS" in out.splitlines()
    assert out.splitlines()[-1].startswith("NOT VERIFIED: 1 of 8 checks failed (signature)")


def test_cli_json_output(files, capsys):
    pack_path, jwks_path = files
    assert main([str(pack_path), "--jwks", str(jwks_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified"] is True and report["keys_independent"] is True and report["warning"] is None
    assert [check["name"] for check in report["checks"]] == CHECK_NAMES


def test_cli_embedded_keys_warn(tmp_path, capsys):
    pack = build_pack()
    pack["jwks"] = JWKS
    pack = seal(pack, LEDGER_KEY)
    pack_path = tmp_path / "pack.json"
    pack_path.write_text(canonical_json(pack))
    assert main([str(pack_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("WARN keys: no --jwks given") and "not independently obtained" in lines[0]
    assert lines[-1].startswith("VERIFIED, but only against keys embedded in the pack")
    assert "not independently obtained" in lines[-1]
    assert main([str(pack_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["keys_independent"] is False and report["warning"]


@pytest.mark.parametrize(
    ("pack_text", "jwks_text", "message"),
    [
        (None, "{}", "cannot read pack"),
        ("{not json", None, "the pack is not valid JSON"),
        ("[]", None, "the pack is not a JSON object"),
        ('{"format": "gavel.evidence-pack/1"}', None, "no --jwks given and the pack embeds no keys"),
        ('{"jwks": {"keys": "x"}}', None, "the JWKS embedded in the pack is invalid"),
        ("{}", "{oops", "JWKS"),
        ("{}", '{"keys": [7]}', "key 1 in the JWKS is not a JSON object"),
    ],
)
def test_cli_bad_input_exits_2(tmp_path, capsys, pack_text, jwks_text, message):
    pack_path, jwks_path = tmp_path / "pack.json", tmp_path / "jwks.json"
    if pack_text is not None:
        pack_path.write_text(pack_text)
    argv = [str(pack_path)]
    if jwks_text is not None:
        jwks_path.write_text(jwks_text)
        argv += ["--jwks", str(jwks_path)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("gavel verify: ") and message in captured.err


def test_cli_missing_jwks_file_exits_2(files, capsys):
    pack_path, _ = files
    assert main([str(pack_path), "--jwks", str(pack_path.parent / "absent.json")]) == 2
    assert "cannot read JWKS" in capsys.readouterr().err


def test_cli_non_utf8_exits_2(tmp_path, capsys):
    pack_path = tmp_path / "pack.json"
    pack_path.write_bytes(b"\xff\xfe{}")
    assert main([str(pack_path), "--jwks", str(pack_path)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_register_wires_a_subcommand(files, capsys):
    import argparse

    parser = argparse.ArgumentParser(prog="gavel")
    sub = parser.add_subparsers(dest="command", required=True)
    from gavel.cli_verify import register

    register(sub)
    pack_path, jwks_path = files
    args = parser.parse_args(["verify", str(pack_path), "--jwks", str(jwks_path)])
    assert args.run(args) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("VERIFIED")
