"""The policy lifecycle over a real server: validate, publish, promote, roll back, explain,
replay, signatures, restarts and --watch."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2

from gavel.bundles import build_archive
from gavel.crypto.keys import Ed25519KeyPair
from gavel.engine.policy import bundle_hash
from gavel.ledger.canonical import canonical_bytes
from gavel.v1 import common_pb2, policy_pb2, policy_pb2_grpc
from tests.e2e.helpers import expect_error, request

OK = grpc.StatusCode
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


def policy(threshold: int, reason: str = "payment.small") -> str:
    return f"""package payments
scope action.type == "payment"
rule small allow "{reason}" when action.amount <= {threshold}
rule bigger require_approval "payment.review"
  when action.amount > {threshold}
  route {{ role: "finance_manager" }}
"""


def archive(tmp_path: Path, text: str, name: str = "v", **kw) -> bytes:
    d = tmp_path / f"bundle-{name}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    d.mkdir(exist_ok=True)
    (d / "payments.rules").write_text(text)
    return build_archive(d, version=name, author="tests", now=NOW, **kw)


def forged_archive(files: dict[str, str]) -> bytes:
    """A well-formed archive whose rules do not compile (build_archive would refuse to make it)."""
    entries = {f"files/{n}": t.encode() for n, t in files.items()}
    manifest = {"format": "gavel.bundle/1", "bundle_hash": bundle_hash(files), "version": "broken",
                "created_at": NOW.isoformat(), "author": "tests", "source_revision": None,
                "files": [{"name": n, "sha256": hashlib.sha256(t.encode()).hexdigest(), "bytes": len(t.encode())}
                          for n, t in sorted(files.items())]}
    entries["manifest.json"] = canonical_bytes(manifest)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name in sorted(entries):
            info = tarfile.TarInfo(name)
            info.size = len(entries[name])
            tar.addfile(info, io.BytesIO(entries[name]))
    return gzip.compress(raw.getvalue(), mtime=0)


def stub(h) -> policy_pb2_grpc.PolicyServiceStub:
    return policy_pb2_grpc.PolicyServiceStub(h.channel)


async def active(h, who: str = "admin_test") -> policy_pb2.ActiveBundle:
    return await stub(h).GetActiveBundle(policy_pb2.GetActiveBundleRequest(), metadata=h.md(who))


async def test_validate_rules_reports_diagnostics_with_locations(harness) -> None:
    ok = await stub(harness).ValidateRules(policy_pb2.ValidateRulesRequest(files={"p.rules": policy(100)}),
                                           metadata=harness.md())
    assert ok.ok
    bad = await stub(harness).ValidateRules(policy_pb2.ValidateRulesRequest(
        files={"p.rules": "package p\nrule r allow when action.amout > 1\n"}), metadata=harness.md())
    assert not bad.ok
    (d,) = bad.diagnostics
    assert (d.code, d.location.file, d.location.line, d.location.column) == ("E101", "p.rules", 2, 19)
    assert "action.amount" in d.help


async def test_publish_decide_promote_and_live_decides_the_same(harness, tmp_path) -> None:
    before = await active(harness)
    assert before.version.startswith("rules-dir:")
    blob = archive(tmp_path, policy(100), "v2")
    published = await stub(harness).PublishBundle(policy_pb2.PublishBundleRequest(bundle=blob), metadata=harness.md())
    assert published.bundle_hash.startswith("sha256:") and published.version == "v2"
    assert (await active(harness)).bundle_hash == published.bundle_hash
    assert (await active(harness, "admin_live")).bundle_hash == before.bundle_hash  # live untouched
    d_test = await harness.decisions.Decide(request(amount="90"), metadata=harness.md("agent"))
    assert d_test.policy.bundle_hash == published.bundle_hash and d_test.policy.bundle_version == "v2"
    await expect_error(stub(harness).PromoteBundle(policy_pb2.PromoteBundleRequest(
        bundle_hash=published.bundle_hash), metadata=harness.md()), OK.PERMISSION_DENIED, "FORBIDDEN")
    promoted = await stub(harness).PromoteBundle(policy_pb2.PromoteBundleRequest(
        bundle_hash=published.bundle_hash), metadata=harness.md("admin_live"))
    assert promoted.bundle_hash == published.bundle_hash and promoted.environment == common_pb2.ENVIRONMENT_LIVE
    d_live = await harness.decisions.Decide(request(amount="90"), metadata=harness.md("admin_live"))
    assert (d_live.outcome, d_live.reason_code, d_live.policy.bundle_hash) == (
        d_test.outcome, d_test.reason_code, d_test.policy.bundle_hash)
    # other tenants keep the rules directory
    assert (await active(harness, "globex_test")).bundle_hash == before.bundle_hash


async def test_a_broken_bundle_is_refused_whole_and_the_old_one_keeps_serving(harness, tmp_path) -> None:
    blob = archive(tmp_path, policy(100), "good")
    await stub(harness).PublishBundle(policy_pb2.PublishBundleRequest(bundle=blob), metadata=harness.md())
    good = await active(harness)
    fields = await expect_error(stub(harness).PublishBundle(policy_pb2.PublishBundleRequest(
        bundle=forged_archive({"p.rules": "package p\nrule r allow when action.amout > 1\n"})),
        metadata=harness.md()), OK.INVALID_ARGUMENT, "INVALID_REQUEST")
    assert fields == ["bundle/p.rules:2:19"]
    await expect_error(stub(harness).PublishBundle(policy_pb2.PublishBundleRequest(bundle=b"not a bundle"),
                                                   metadata=harness.md()), OK.INVALID_ARGUMENT, "INVALID_REQUEST")
    assert (await active(harness)).bundle_hash == good.bundle_hash
    d = await harness.decisions.Decide(request(amount="90"), metadata=harness.md("agent"))
    assert d.policy.bundle_hash == good.bundle_hash


async def test_history_and_rollback(harness, tmp_path) -> None:
    directory = await active(harness)
    first = await stub(harness).PublishBundle(policy_pb2.PublishBundleRequest(
        bundle=archive(tmp_path, policy(100), "one")), metadata=harness.md())
    second = await stub(harness).PublishBundle(policy_pb2.PublishBundleRequest(
        bundle=archive(tmp_path, policy(200), "two")), metadata=harness.md())
    back = await stub(harness).RollbackBundle(policy_pb2.RollbackBundleRequest(bundle_hash=first.bundle_hash),
                                              metadata=harness.md())
    assert back.bundle_hash == first.bundle_hash == (await active(harness)).bundle_hash
    history = await stub(harness).ListBundleHistory(policy_pb2.ListBundleHistoryRequest(), metadata=harness.md())
    assert [(a.action, a.bundle_hash) for a in history.activations] == [
        ("rollback", first.bundle_hash), ("publish", second.bundle_hash), ("publish", first.bundle_hash),
        ("rules-dir", directory.bundle_hash)]  # the --rules directory decided before the first publish
    await expect_error(stub(harness).RollbackBundle(policy_pb2.RollbackBundleRequest(
        bundle_hash=second.bundle_hash), metadata=harness.md("admin_live")), OK.FAILED_PRECONDITION,
        "INVALID_TRANSITION")  # never ran in live
    await expect_error(stub(harness).PromoteBundle(policy_pb2.PromoteBundleRequest(
        bundle_hash="sha256:" + "0" * 64), metadata=harness.md("admin_live")), OK.NOT_FOUND, "NOT_FOUND")


async def test_explain_is_a_dry_run(harness, tmp_path) -> None:
    from tests.e2e.test_evidence import chain_size

    size = await chain_size(harness)
    d = await stub(harness).ExplainDecision(policy_pb2.ExplainDecisionRequest(
        request=request(amount="150"), bundle=archive(tmp_path, policy(200), "candidate")), metadata=harness.md())
    assert d.outcome == common_pb2.OUTCOME_ALLOW and d.decision_token == "" and d.decision_id == ""
    assert d.policy.bundle_version == "candidate" and "dry run" in d.warnings[0]
    active_explain = await stub(harness).ExplainDecision(policy_pb2.ExplainDecisionRequest(
        request=request(amount="150")), metadata=harness.md())
    assert active_explain.reason_code and json.loads(active_explain.explain.json)["summary"]
    assert await chain_size(harness) == size  # nothing recorded


async def test_replay_finds_exactly_the_decisions_a_threshold_change_flips(harness, tmp_path) -> None:
    await stub(harness).PublishBundle(policy_pb2.PublishBundleRequest(bundle=archive(tmp_path, policy(100), "v1")),
                                      metadata=harness.md())
    amounts = [50, 90, 100, 101, 110, 120, 121, 150, 300]
    recorded = {}
    for a in amounts:
        d = await harness.decisions.Decide(request(amount=str(a)), metadata=harness.md("agent"))
        recorded[d.decision_id] = a
    since = duration_pb2.Duration()
    since.FromSeconds(3600)
    results = [r async for r in stub(harness).ReplayBundle(policy_pb2.ReplayBundleRequest(
        bundle=archive(tmp_path, policy(120), "v3"), since=since), metadata=harness.md())]
    *changed, last = results
    assert sorted(recorded[r.decision_id] for r in changed) == [101, 110, 120]
    assert all(r.old_outcome == common_pb2.OUTCOME_REQUIRE_APPROVAL and r.new_outcome == common_pb2.OUTCOME_ALLOW
               for r in changed)
    assert json.loads(changed[0].new_explain_json)["summary"].startswith("allow")
    assert last.summary.evaluated == len(amounts) and last.summary.changed == 3
    assert dict(last.summary.transitions) == {"require_approval→allow": 3}


async def test_published_bundles_survive_a_restart(tmp_path, rules_dir) -> None:
    from gavel.adapters.grpc.server import GrpcServer
    from gavel.bootstrap import build
    from gavel.config import Settings
    from tests.e2e.conftest import seed_keys

    settings = Settings(data_dir=tmp_path / "data", rules=rules_dir, grpc_addr="127.0.0.1:0")
    runtime = build(settings)
    keys = seed_keys(runtime)
    admin = await runtime.app.authenticate(keys["admin_test"])
    published = await runtime.app.publish_bundle(admin, archive(tmp_path, policy(77), "kept"), "")
    await runtime.close()
    runtime = build(settings)
    server = GrpcServer(runtime)
    await server.start("127.0.0.1:0")
    try:
        assert (await runtime.app.active_bundle(admin))["bundle_hash"] == published["bundle_hash"]
    finally:
        await server.stop(0)


@pytest.fixture
def settings_overrides(tmp_path, request):
    marker = request.node.get_closest_marker("signed")
    if marker is None:
        return {}
    key = Ed25519KeyPair.from_seed(bytes(range(32)))
    (tmp_path / "publishers.json").write_text(json.dumps({"keys": [key.public_jwk()]}))
    return {"require_signed_bundles": True, "bundle_keys": tmp_path / "publishers.json"}


@pytest.mark.signed
async def test_a_server_requiring_signatures_refuses_unsigned_and_wrongly_signed(harness, tmp_path) -> None:
    trusted = Ed25519KeyPair.from_seed(bytes(range(32)))
    stranger = Ed25519KeyPair.from_seed(bytes(range(1, 33)))
    for blob in (archive(tmp_path, policy(100), "unsigned"),
                 archive(tmp_path, policy(101), "stranger", sign_with=stranger)):
        await expect_error(stub(harness).PublishBundle(policy_pb2.PublishBundleRequest(bundle=blob),
                                                       metadata=harness.md()), OK.INVALID_ARGUMENT, "INVALID_REQUEST")
    ok = await stub(harness).PublishBundle(policy_pb2.PublishBundleRequest(
        bundle=archive(tmp_path, policy(102), "signed", sign_with=trusted)), metadata=harness.md())
    assert ok.version == "signed"


@pytest.fixture
def watch_settings():
    return {"watch": True}


async def test_watch_mode_reloads_atomically_and_survives_broken_edits(tmp_path) -> None:
    from gavel.adapters.grpc.server import GrpcServer
    from gavel.bootstrap import build
    from gavel.config import Settings

    rules = tmp_path / "live-rules"
    rules.mkdir()
    (rules / "payments.rules").write_text(policy(100))
    runtime = build(Settings(data_dir=tmp_path / "data", rules=rules, grpc_addr="127.0.0.1:0", watch=True))
    server = GrpcServer(runtime)
    await server.start("127.0.0.1:0")
    try:
        for threshold in range(101, 111):  # rapid edits
            (rules / "payments.rules").write_text(policy(threshold))
            await asyncio.sleep(0.05)
        expected = bundle_hash({"payments.rules": policy(110)})
        for _ in range(60):
            if runtime.policies.initial.bundle_hash == expected:
                break
            await asyncio.sleep(0.1)
        assert runtime.policies.initial.bundle_hash == expected
        (rules / "payments.rules").write_text("package payments\nrule r allow when action.amout > 1\n")
        await asyncio.sleep(1.5)
        assert runtime.policies.initial.bundle_hash == expected  # the broken edit is not served
        engine = runtime.policies.initial.engine
        d = engine.decide_at({"action": {"type": "payment", "amount": "110"}, "agent": {"id": "a"}}, None, NOW)
        assert d.outcome == "allow"
    finally:
        await server.stop(0)


async def test_policy_service_roles(harness) -> None:
    await expect_error(stub(harness).GetActiveBundle(policy_pb2.GetActiveBundleRequest(),
                                                     metadata=harness.md("agent")), OK.PERMISSION_DENIED, "FORBIDDEN")
