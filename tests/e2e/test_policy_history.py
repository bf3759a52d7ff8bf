"""Policy history tells the whole truth (issue 14), over a real server.

The --rules directory's bundle is an activation like any other: it is in ListBundleHistory
(`rules-dir`, with its ledger event), RollbackBundle can go back to it after a publish, and a
rollback pins it across restarts even when the directory changes. GetBundle returns the exact
archive of any bundle the caller's environment ran, or NOT_FOUND — for another tenant's or the
other environment's hash as for one that never existed.
"""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from gavel.adapters.grpc.server import GrpcServer
from gavel.bootstrap import build
from gavel.bundles import make_bundle, read_archive, write_archive
from gavel.config import Settings
from gavel.crypto.keys import Ed25519KeyPair
from gavel.ledger.canonical import canonical_json
from gavel.v1 import evidence_pb2, policy_pb2, policy_pb2_grpc
from tests.e2e.conftest import RULES, seed_keys
from tests.e2e.helpers import expect_error, request

OK = grpc.StatusCode
STRICTER = RULES.replace("action.amount <= 500", "action.amount <= 50")
PUBLISHER = Ed25519KeyPair.from_seed(bytes(range(32)))


def stub(h) -> policy_pb2_grpc.PolicyServiceStub:
    return policy_pb2_grpc.PolicyServiceStub(h.channel)


def bundle(text: str, version: str) -> bytes:
    return write_archive(make_bundle({"payments.rules": text}, version=version, author="tests"))


async def history(h, who: str = "admin_test") -> list[policy_pb2.BundleActivation]:
    return list((await stub(h).ListBundleHistory(policy_pb2.ListBundleHistoryRequest(), metadata=h.md(who)))
                .activations)


async def get_bundle(h, bundle_hash: str, who: str = "admin_test") -> policy_pb2.GetBundleResponse:
    return await stub(h).GetBundle(policy_pb2.GetBundleRequest(bundle_hash=bundle_hash), metadata=h.md(who))


async def test_the_rules_directory_is_in_the_history_and_can_be_rolled_back_to(harness) -> None:
    directory = await stub(harness).GetActiveBundle(policy_pb2.GetActiveBundleRequest(), metadata=harness.md())
    assert directory.version.startswith("rules-dir:")
    published = await stub(harness).PublishBundle(policy_pb2.PublishBundleRequest(bundle=bundle(STRICTER, "v2")),
                                                  metadata=harness.md())
    d = await harness.decisions.Decide(request(amount="90"), metadata=harness.md("agent"))
    assert d.reason_code != "payment.small"  # v2 decides

    first, second = await history(harness)
    assert (first.action, first.bundle_hash) == ("publish", published.bundle_hash)
    assert (second.action, second.bundle_hash, second.version, second.by) == (
        "rules-dir", directory.bundle_hash, directory.version, "gavel serve --rules")
    assert second.activated_at.ToDatetime() <= first.activated_at.ToDatetime()

    back = await stub(harness).RollbackBundle(policy_pb2.RollbackBundleRequest(bundle_hash=directory.bundle_hash),
                                              metadata=harness.md())
    assert back.bundle_hash == directory.bundle_hash
    d = await harness.decisions.Decide(request(amount="90"), metadata=harness.md("agent"))
    assert (d.reason_code, d.policy.bundle_hash) == ("payment.small", directory.bundle_hash)
    assert [(a.action, a.bundle_hash) for a in await history(harness)] == [
        ("rollback", directory.bundle_hash), ("publish", published.bundle_hash), ("rules-dir", directory.bundle_hash)]

    # each activation is a bundle.activated event in the environment's ledger, the directory's too
    events = await _activation_events(harness)
    assert [(e["data"]["action"], e["subject"]) for e in events] == [
        ("rules-dir", directory.bundle_hash), ("publish", published.bundle_hash), ("rollback", directory.bundle_hash)]
    assert (await harness.evidence.VerifyLedger(evidence_pb2.VerifyLedgerRequest(), metadata=harness.md())).ok


async def _activation_events(h) -> list[dict]:
    events = await h.runtime.store.read(lambda uow: uow.ledger.events("acme", "test", 1, 10_000))
    return [json.loads(e.payload_json) for e in events if e.type == "bundle.activated"]


async def test_get_bundle_returns_the_exact_archive_the_environment_ran(harness) -> None:
    directory = await stub(harness).GetActiveBundle(policy_pb2.GetActiveBundleRequest(), metadata=harness.md())
    followed = await get_bundle(harness, directory.bundle_hash)  # followed, not yet recorded: still readable
    assert read_archive(followed.archive).files == {"payments.rules": RULES}
    assert followed.version == "rules-dir" and json.loads(followed.manifest_json)["bundle_hash"] == (
        directory.bundle_hash)

    blob = bundle(STRICTER, "v2")
    published = await stub(harness).PublishBundle(policy_pb2.PublishBundleRequest(bundle=blob), metadata=harness.md())
    got = await get_bundle(harness, published.bundle_hash, "auditor")  # an auditor reads what decided
    assert got.archive == blob and got.version == "v2" and got.bundle_hash == published.bundle_hash
    assert got.manifest_json == canonical_json(read_archive(blob).manifest)
    recorded = await get_bundle(harness, directory.bundle_hash)  # now through its rules-dir activation
    assert recorded.archive == followed.archive

    # the other environment never ran v2, another tenant never ran anything of acme's: both are
    # answered exactly as a hash that never existed
    never = "sha256:" + "0" * 64
    for who in ("admin_live", "globex_test"):
        for bundle_hash in (published.bundle_hash, never):
            await expect_error(get_bundle(harness, bundle_hash, who), OK.NOT_FOUND, "NOT_FOUND")
    await expect_error(get_bundle(harness, ""), OK.INVALID_ARGUMENT, "MISSING_REQUIRED_FIELD")
    await expect_error(get_bundle(harness, published.bundle_hash, "agent"), OK.PERMISSION_DENIED, "FORBIDDEN")


async def test_a_rollback_to_the_directory_pins_it_across_a_restart_with_new_rules(tmp_path: Path,
                                                                                   rules_dir: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", rules=rules_dir, grpc_addr="127.0.0.1:0")
    runtime = build(settings)
    keys = seed_keys(runtime)
    test_admin = await runtime.app.authenticate(keys["admin_test"])
    live_admin = await runtime.app.authenticate(keys["admin_live"])
    old = runtime.policies.initial.bundle_hash
    await runtime.app.publish_bundle(test_admin, bundle(STRICTER, "v2"), "")
    await runtime.app.rollback_bundle(test_admin, old, "")
    await runtime.close()

    (rules_dir / "payments.rules").write_text(STRICTER.replace("payment.small", "payment.tiny"))
    runtime = build(settings)  # the tenants exist now: the new directory is recorded where it decides
    server = GrpcServer(runtime)
    await server.start("127.0.0.1:0")
    try:
        new = runtime.policies.initial.bundle_hash
        assert new != old
        assert (await runtime.app.active_bundle(test_admin))["bundle_hash"] == old  # pinned by the rollback
        assert (await runtime.app.active_bundle(live_admin))["bundle_hash"] == new  # follows the directory
        live = (await runtime.app.bundle_history(live_admin, 0, ""))["activations"]
        assert [(a["action"], a["bundle_hash"]) for a in live] == [("rules-dir", new)]
        test = (await runtime.app.bundle_history(test_admin, 0, ""))["activations"]
        assert [a["action"] for a in test] == ["rollback", "publish", "rules-dir"]
        assert (await runtime.app.get_bundle(test_admin, old))["archive"]  # still readable after the change
    finally:
        await server.stop(0)


@pytest.fixture
def settings_overrides(tmp_path, request):
    if request.node.get_closest_marker("signed") is None:
        return {}
    (tmp_path / "publishers.json").write_text(json.dumps({"keys": [PUBLISHER.public_jwk()]}))
    return {"require_signed_bundles": True, "bundle_keys": tmp_path / "publishers.json"}


@pytest.mark.signed
async def test_a_server_requiring_signatures_still_rolls_back_to_its_own_directory(harness) -> None:
    directory = await stub(harness).GetActiveBundle(policy_pb2.GetActiveBundleRequest(), metadata=harness.md())
    signed = write_archive(make_bundle({"payments.rules": STRICTER}, version="signed", sign_with=PUBLISHER))
    await stub(harness).PublishBundle(policy_pb2.PublishBundleRequest(bundle=signed), metadata=harness.md())
    back = await stub(harness).RollbackBundle(policy_pb2.RollbackBundleRequest(bundle_hash=directory.bundle_hash),
                                              metadata=harness.md())
    assert back.bundle_hash == directory.bundle_hash  # the operator's directory is trusted unsigned
    unsigned = bundle(STRICTER.replace("payment.small", "payment.unsigned"), "unsigned")
    await expect_error(stub(harness).PublishBundle(policy_pb2.PublishBundleRequest(bundle=unsigned),
                                                   metadata=harness.md()), OK.INVALID_ARGUMENT, "INVALID_REQUEST")
