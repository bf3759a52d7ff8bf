"""The per-`.rules`-file limit over a real server: the same limit for ValidateRules, every
bundle the server compiles (publish, explain, replay) and the --rules directory, set with
GAVEL_MAX_RULES_FILE_BYTES (here 2,000 bytes; the default, 16 MiB, is held by
tests/bad_input/test_limits.py and tests/e2e/test_compile_isolation.py). Data files keep their
own limit."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from google.protobuf import duration_pb2

from gavel.bootstrap import build
from gavel.bundles import make_bundle, write_archive
from gavel.config import Settings
from gavel.sources import SourceError
from gavel.v1 import policy_pb2, policy_pb2_grpc
from tests.e2e.helpers import expect_error, request

LIMIT = 2_000
HEAD = 'package p\nscope action.type == "payment"\nrule ok allow "payment.ok" when action.amount <= 10\n'


def sized(n: int) -> str:
    """A valid rules file of exactly `n` bytes (a comment pads it)."""
    text = HEAD + "# "
    return text + "x" * (n - len(text.encode()) - 1) + "\n"


pytestmark = pytest.mark.parametrize("settings_overrides", [{"max_rules_file_bytes": LIMIT}])


async def test_validate_rules_applies_the_configured_limit(harness) -> None:
    stub = policy_pb2_grpc.PolicyServiceStub(harness.channel)
    at = await stub.ValidateRules(policy_pb2.ValidateRulesRequest(files={"p.rules": sized(LIMIT)}),
                                  metadata=harness.md())
    assert at.ok, at.diagnostics
    past = await stub.ValidateRules(policy_pb2.ValidateRulesRequest(files={"p.rules": sized(LIMIT + 1)}),
                                    metadata=harness.md())
    assert not past.ok
    (d,) = past.diagnostics
    assert (d.code, d.message, d.location.file, d.location.line, d.location.column) == (
        "E006", f"file is larger than {LIMIT} bytes", "p.rules", 1, 1)
    data = await stub.ValidateRules(policy_pb2.ValidateRulesRequest(
        files={"p.rules": HEAD, "data/big.json": '["' + "v" * (LIMIT * 2) + '"]'}), metadata=harness.md())
    assert data.ok, data.diagnostics  # data files have their own limit (4,000,000 bytes)


async def test_every_bundle_the_server_compiles_applies_the_configured_limit(harness) -> None:
    stub = policy_pb2_grpc.PolicyServiceStub(harness.channel)
    big = write_archive(make_bundle({"big.rules": sized(LIMIT + 1)}, version="big"))
    fields = await expect_error(stub.PublishBundle(policy_pb2.PublishBundleRequest(bundle=big), metadata=harness.md()),
                                grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")
    assert fields == ["bundle/big.rules:1:1"]
    await expect_error(stub.ExplainDecision(policy_pb2.ExplainDecisionRequest(request=request(amount="5"), bundle=big),
                                            metadata=harness.md()), grpc.StatusCode.INVALID_ARGUMENT,
                       "INVALID_REQUEST")
    since = duration_pb2.Duration()
    since.FromTimedelta(timedelta(hours=1))
    await expect_error(stub.ReplayBundle(policy_pb2.ReplayBundleRequest(bundle=big, since=since),
                                         metadata=harness.md()).read(), grpc.StatusCode.INVALID_ARGUMENT,
                       "INVALID_REQUEST")
    ok = write_archive(make_bundle({"ok.rules": sized(LIMIT)}, version="at-the-limit"))
    published = await stub.PublishBundle(policy_pb2.PublishBundleRequest(bundle=ok), metadata=harness.md())
    assert published.version == "at-the-limit"


def test_the_rules_directory_applies_the_configured_limit(tmp_path, settings_overrides) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "p.rules").write_text(sized(LIMIT + 1))
    with pytest.raises(SourceError, match=f"file is larger than {LIMIT} bytes"):
        build(Settings(data_dir=tmp_path / "data", rules=rules, **settings_overrides))
