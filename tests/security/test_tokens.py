"""Decision tokens under attack, over a real server: forged algorithms, wrong keys, edited claims,
expiry, revocation, replay, other tenants, changed args — each refused with API.md's reason, in
API.md's order (signature and kid → expiry, audience, tenant, environment → revocation → bound
args → burn). And, in-process, that verification never lets the header choose the algorithm.

Tokens with valid signatures but chosen claims are made with the server's own signing key (the
test reads it from the running process): that is how the claim checks after the signature are
reached at all. Without the key, every edit ends at the signature check.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
import inspect
import json
import time
from datetime import UTC, datetime
from decimal import Decimal

import grpc
import pytest

from gavel.crypto import jws
from gavel.crypto.jws import TokenInvalid, args_hash, sign_compact, verify_compact
from gavel.crypto.keys import Ed25519KeyPair, PublicKey, b64url_decode, b64url_encode
from gavel.v1 import decision_pb2
from tests.e2e.helpers import expect_error, request, token_parts
from tests.security.support import answer

OK = grpc.StatusCode
ATTACKER = Ed25519KeyPair.from_seed(bytes(range(100, 132)))


def encode(value) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode())


def server_key(h) -> Ed25519KeyPair:
    return h.runtime.signing.keyset().active


async def allowed(h, amount: str = "100.00", **kw) -> tuple[decision_pb2.Decision, dict, dict]:
    d = await h.decisions.Decide(request(amount=amount, **kw), metadata=h.md("agent"))
    assert d.decision_token
    header, claims, _, _ = token_parts(d.decision_token)
    return d, header, claims


def consume(h, token: str, who: str = "agent", args_hash: str = ""):
    return h.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=token, args_hash=args_hash),
                                    metadata=h.md(who))


def report(h, d, token: str, who: str = "agent"):
    return h.decisions.ReportExecution(decision_pb2.ReportExecutionRequest(
        decision_id=d.decision_id, decision_token=token, status=decision_pb2.EXECUTION_STATUS_SUCCEEDED,
        amount="100.00", currency="USD"), metadata=h.md(who))


async def refused_everywhere(h, d, token: str, reason: str = "DECISION_TOKEN_INVALID") -> None:
    """The token is refused by ConsumeToken, ReportExecution and RevokeToken alike."""
    await expect_error(consume(h, token), OK.PERMISSION_DENIED, reason)
    await expect_error(report(h, d, token), OK.PERMISSION_DENIED, reason)
    await expect_error(h.decisions.RevokeToken(decision_pb2.RevokeTokenRequest(token=token), metadata=h.md("agent")),
                       OK.PERMISSION_DENIED, reason)


async def still_good(h, d) -> None:
    """The genuine token was neither spent nor revoked by whatever was tried with forgeries of it."""
    r = await consume(h, d.decision_token)
    assert r.valid and r.decision_id == d.decision_id


# -- forged algorithms and keys, over the server ------------------------------------------------------


async def test_alg_none_and_hs256_with_the_public_key_are_refused(harness) -> None:
    h = harness
    d, header, claims = await allowed(h)
    payload = encode(claims)
    forged = [f"{encode({'alg': alg, 'kid': header['kid'], 'typ': 'JWT'})}.{payload}." for alg in
              ("none", "None", "NONE", "nOnE")]
    forged.append(f"{encode({'alg': 'none'})}.{payload}.")
    public = server_key(h).public_key
    jwk = server_key(h).public_jwk()
    secrets = [public, b64url_encode(public).encode(), json.dumps(jwk).encode(),
               json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode(),
               base64.b64encode(public), b"-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(public)]
    for alg, digest in (("HS256", hashlib.sha256), ("HS384", hashlib.sha384), ("HS512", hashlib.sha512)):
        for secret in secrets:
            head = encode({"alg": alg, "kid": header["kid"], "typ": "JWT"})
            mac = hmac.new(secret, f"{head}.{payload}".encode(), digest).digest()
            forged.append(f"{head}.{payload}.{b64url_encode(mac)}")
    for token in forged:
        await refused_everywhere(h, d, token)
    await still_good(h, d)


async def test_wrong_kid_and_foreign_keys_are_refused(harness) -> None:
    h = harness
    d, header, claims = await allowed(h)
    real_kid = header["kid"]
    for head in ({"alg": "EdDSA", "kid": ATTACKER.kid}, {"alg": "EdDSA", "kid": real_kid},
                 {"alg": "EdDSA", "kid": real_kid, "jwk": ATTACKER.public_jwk()},
                 {"alg": "EdDSA", "kid": real_kid, "jku": "https://attacker.example/jwks.json"},
                 {"alg": "EdDSA", "kid": "../../signing-keys.json"}, {"alg": "EdDSA", "kid": ""},
                 {"alg": "EdDSA"}):
        signing_input = f"{encode(head)}.{encode(claims)}"
        token = f"{signing_input}.{b64url_encode(ATTACKER.sign(signing_input.encode()))}"
        await refused_everywhere(h, d, token)
    # the server's real signature under another kid
    _, payload, signature = d.decision_token.split(".")
    other = encode({"alg": "EdDSA", "kid": ATTACKER.kid, "typ": "JWT"})
    await refused_everywhere(h, d, f"{other}.{payload}.{signature}")
    await still_good(h, d)


def edits(value):
    """Other values of the claim's type (and of other types)."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1, str(value), value + 86_400 * 365]
    return [value + "x", value.upper() if value != value.upper() else value.lower(), "", None, 0]


async def test_every_claim_edited_is_refused(harness) -> None:
    h = harness
    d, header, claims = await allowed(h)
    head, _, signature = d.decision_token.split(".")
    assert set(claims) == {"iss", "aud", "sub", "jti", "iat", "exp", "tenant", "env", "decision_id", "action_type",
                           "amount", "currency", "args_hash", "enforced", "outcome"}
    assert (claims["enforced"], claims["outcome"]) == (True, "allow")
    tried = 0
    for name, value in claims.items():
        for new in edits(value):
            if new == value:
                continue
            edited = {**claims, name: new}
            await expect_error(consume(h, f"{head}.{encode(edited)}.{signature}"), OK.PERMISSION_DENIED,
                               "DECISION_TOKEN_INVALID")
            tried += 1
        removed = {k: v for k, v in claims.items() if k != name}
        await expect_error(consume(h, f"{head}.{encode(removed)}.{signature}"), OK.PERMISSION_DENIED,
                           "DECISION_TOKEN_INVALID")
    added = {**claims, "scope": "admin"}
    await expect_error(consume(h, f"{head}.{encode(added)}.{signature}"), OK.PERMISSION_DENIED,
                       "DECISION_TOKEN_INVALID")
    assert tried > 40
    await still_good(h, d)


# -- claims with a valid signature (made with the server's own key) -----------------------------------


def resign(h, claims: dict) -> str:
    return sign_compact(claims, server_key(h))


@pytest.mark.parametrize(("change", "why"), [
    ({"exp": "past"}, "expired"),
    ({"exp": "missing"}, "expired"),
    ({"exp": "string"}, "expired"),
    ({"exp": "decimal"}, "expired"),
    ({"aud": "another-service"}, "audience"),
    ({"iss": "https://evil.example"}, "issuer"),
    ({"tenant": "globex"}, "another tenant"),
    ({"env": "live"}, "another tenant or environment"),
    ({"jti": "missing"}, "missing claims"),
    ({"decision_id": "missing"}, "missing claims"),
    ({"jti": "tok_made_up_1234567890"}, "unknown token"),
])
async def test_each_claim_check_refuses_with_its_reason(harness, change, why) -> None:
    h = harness
    d, _, claims = await allowed(h)
    name, value = next(iter(change.items()))
    forged = dict(claims)
    if value == "missing":
        del forged[name]
    elif value == "past":
        forged[name] = int(time.time()) - 1
    elif value == "string":
        forged[name] = str(claims[name] + 3600)
    elif value == "decimal":
        forged[name] = Decimal(claims[name]) + Decimal("0.5")
    else:
        forged[name] = value
    got = await answer(consume(h, resign(h, forged)))
    assert (got.code, got.reason) == (OK.PERMISSION_DENIED, "DECISION_TOKEN_INVALID") and why in got.message, got
    await still_good(h, d)


async def test_a_validly_signed_token_rewritten_for_another_tenant_still_cannot_be_spent_there(harness) -> None:
    """Even with the signing key, the tenant claim alone does not move a token: the issued token's
    record (tenant, environment) is checked when it is burned."""
    h = harness
    d, _, claims = await allowed(h)
    for tenant, env, who in (("globex", "test", "globex_test"), ("acme", "live", "admin_live")):
        moved = resign(h, {**claims, "tenant": tenant, "env": env})
        await expect_error(consume(h, moved, who), OK.PERMISSION_DENIED, "DECISION_TOKEN_INVALID")
        await expect_error(h.decisions.RevokeToken(decision_pb2.RevokeTokenRequest(token=moved), metadata=h.md(who)),
                           OK.NOT_FOUND, "NOT_FOUND")
    await still_good(h, d)


async def test_an_expired_token_is_refused_before_revocation_is_looked_at(harness) -> None:
    h = harness
    d, _, claims = await allowed(h)
    await h.decisions.RevokeToken(decision_pb2.RevokeTokenRequest(jti=claims["jti"]), metadata=h.md("agent"))
    expired = resign(h, {**claims, "exp": int(time.time()) - 5})
    await expect_error(consume(h, expired), OK.PERMISSION_DENIED, "DECISION_TOKEN_INVALID")
    await expect_error(consume(h, d.decision_token), OK.PERMISSION_DENIED, "TOKEN_REVOKED")


# -- revocation, binding, replay, and their order --------------------------------------------------------


async def test_revocation_comes_before_the_args_and_the_args_before_the_burn(harness) -> None:
    h = harness
    wrong = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    revoked, _, claims = await allowed(h)
    await h.decisions.RevokeToken(decision_pb2.RevokeTokenRequest(token=revoked.decision_token),
                                  metadata=h.md("agent"))
    await expect_error(consume(h, revoked.decision_token, args_hash=wrong), OK.PERMISSION_DENIED, "TOKEN_REVOKED")
    await expect_error(consume(h, revoked.decision_token, args_hash=claims["args_hash"]), OK.PERMISSION_DENIED,
                       "TOKEN_REVOKED")
    spent, _, claims = await allowed(h)
    await consume(h, spent.decision_token, args_hash=claims["args_hash"])
    await expect_error(consume(h, spent.decision_token, args_hash=wrong), OK.PERMISSION_DENIED,
                       "DECISION_TOKEN_INVALID")
    await expect_error(consume(h, spent.decision_token), OK.ALREADY_EXISTS, "DECISION_TOKEN_REUSED")
    await expect_error(consume(h, spent.decision_token, args_hash=claims["args_hash"]), OK.ALREADY_EXISTS,
                       "DECISION_TOKEN_REUSED")
    # a spent token cannot be revoked afterwards either (nothing is left to revoke)
    await expect_error(h.decisions.RevokeToken(decision_pb2.RevokeTokenRequest(token=spent.decision_token),
                                               metadata=h.md("agent")), OK.FAILED_PRECONDITION, "INVALID_TRANSITION")


async def test_a_token_is_bound_to_the_exact_action(harness) -> None:
    h = harness
    d, _, claims = await allowed(h, amount="120.50", args={"invoice": "INV-1", "lines": 2})
    action = {"type": "payment", "amount": "120.5", "currency": "USD", "args": {"invoice": "INV-1", "lines": 2}}
    assert args_hash(action) == claims["args_hash"]
    for changed in ({**action, "amount": "120.51"}, {**action, "amount": "1205"}, {**action, "currency": "EUR"},
                    {**action, "type": "refund"}, {**action, "args": {"invoice": "INV-2", "lines": 2}},
                    {**action, "args": {"invoice": "INV-1", "lines": 2, "to": "attacker"}},
                    {**action, "args": {"invoice": "INV-1"}}, {**action, "tool": "wire"},
                    {k: v for k, v in action.items() if k != "args"}):
        await expect_error(consume(h, d.decision_token, args_hash=args_hash(changed)), OK.PERMISSION_DENIED,
                           "DECISION_TOKEN_INVALID")
    for malformed in ("sha256:", "sha256:" + "0" * 63, claims["args_hash"].upper(), claims["args_hash"] + " ",
                      claims["args_hash"][7:]):
        await expect_error(consume(h, d.decision_token, args_hash=malformed), OK.PERMISSION_DENIED,
                           "DECISION_TOKEN_INVALID")
    r = await consume(h, d.decision_token, args_hash=args_hash({**action, "amount": Decimal("120.500")}))
    assert r.valid


async def test_another_decisions_token_cannot_report_or_spend_for_this_one(harness) -> None:
    h = harness
    first, _, _ = await allowed(h)
    second, _, _ = await allowed(h)
    await expect_error(report(h, first, second.decision_token), OK.PERMISSION_DENIED, "DECISION_TOKEN_INVALID")
    rep = await report(h, first, first.decision_token)
    assert rep.reconciliation.status == decision_pb2.RECONCILIATION_STATUS_MATCHED
    await still_good(h, second)


# -- in-process: the header never chooses the algorithm ---------------------------------------------------

JOSE_ALGORITHMS = ["none", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512",
                   "ES256K", "PS256", "PS384", "PS512", "Ed25519", "Ed448", "EDDSA", "eddsa", "EdDSA ", " EdDSA",
                   "dir", "A128KW", "RSA-OAEP", "", None, 0, ["EdDSA"], {"alg": "EdDSA"}]
SIGNER = Ed25519KeyPair.from_seed(bytes(range(32)))
CLAIMS = {"jti": "tok_1", "tenant": "acme", "exp": 4_102_444_800}


class SpyKeys:
    """A key lookup that records every kid asked for and every signature check made."""

    def __init__(self, pair: Ed25519KeyPair):
        self.asked: list[str] = []
        self.checks: list[tuple[bytes, bytes]] = []
        outer = self

        class Spied(PublicKey):
            def verify(self, message: bytes, signature: bytes) -> bool:
                outer.checks.append((message, signature))
                return super().verify(message, signature)

        self.key = Spied(pair.public_key)

    def __call__(self, kid: str):
        self.asked.append(kid)
        return self.key


@pytest.mark.parametrize("alg", JOSE_ALGORITHMS, ids=repr)
def test_a_foreign_alg_is_refused_before_any_key_is_consulted(alg) -> None:
    header = encode({"alg": alg, "kid": SIGNER.kid})
    payload = encode(CLAIMS)
    signing_input = f"{header}.{payload}".encode()
    candidates = [b"", SIGNER.sign(signing_input), hmac.new(SIGNER.public_key, signing_input, hashlib.sha256).digest()]
    for signature in candidates:
        spy = SpyKeys(SIGNER)
        with pytest.raises(TokenInvalid, match="alg"):
            verify_compact(f"{header}.{payload}.{b64url_encode(signature)}", spy)
        assert spy.asked == [] and spy.checks == []


def test_the_only_check_is_ed25519_with_the_key_found_by_kid() -> None:
    token = sign_compact(CLAIMS, SIGNER)
    spy = SpyKeys(SIGNER)
    assert verify_compact(token, spy) == CLAIMS
    head, payload, signature = token.split(".")
    assert spy.asked == [SIGNER.kid]
    assert spy.checks == [(f"{head}.{payload}".encode(), b64url_decode(signature))]
    # the key the lookup returns decides, whatever else the header offers
    for extra in ({"jwk": ATTACKER.public_jwk()}, {"jku": "https://attacker.example"}, {"x5u": "https://a.example"},
                  {"x5c": ["AAAA"]}):
        head = encode({"alg": "EdDSA", "kid": SIGNER.kid, **extra})
        signing_input = f"{head}.{payload}"
        forged = f"{signing_input}.{b64url_encode(ATTACKER.sign(signing_input.encode()))}"
        spy = SpyKeys(SIGNER)
        with pytest.raises(TokenInvalid, match="bad signature"):
            verify_compact(forged, spy)
        assert spy.asked == [SIGNER.kid] and len(spy.checks) == 1


def test_the_verifier_code_has_no_algorithm_table() -> None:
    """Code-level: jws.py reads `alg` only to compare it with the one constant ALGORITHM, imports no
    MAC or other signature scheme, and checks signatures only through the looked-up key's verify()."""
    source = inspect.getsource(jws)
    tree = ast.parse(source)
    assert jws.ALGORITHM == "EdDSA"
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in node.names} | {node.module.split(".")[0] for node in ast.walk(tree)
                                            if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"hmac", "hashlib", "jwt", "jose", "jwcrypto", "cryptography", "Crypto", "rsa", "ecdsa"}
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}

    def enclosing(node, kinds):
        while node in parents and not isinstance(node, kinds):
            node = parents[node]
        return node

    alg_reads = [node for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value == "alg"]
    assert len(alg_reads) == 2
    for node in alg_reads:
        up = enclosing(node, ast.Compare | ast.Dict | ast.FunctionDef)
        if isinstance(up, ast.Dict):  # the header that sign_compact writes
            assert enclosing(up, ast.FunctionDef).name == "sign_compact"
            continue
        assert isinstance(up, ast.Compare), ast.unparse(up)
        names = {n.id for n in ast.walk(up) if isinstance(n, ast.Name)}
        assert "ALGORITHM" in names, ast.unparse(up)
    verify_calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute) and node.func.attr == "verify"]
    assert [ast.unparse(c.func) for c in verify_calls] == ["public_key.verify"]


def test_the_unverified_reader_is_never_used_to_decide() -> None:
    """decode_unverified_claims exists for diagnostics; no code path of the service relies on it."""
    import pathlib

    import gavel

    root = pathlib.Path(gavel.__file__).parent
    users = [p.relative_to(root).as_posix() for p in root.rglob("*.py")
             if "decode_unverified_claims" in p.read_text() and p.name != "jws.py"]
    assert users == [], users


def test_claims_reach_the_caller_only_after_the_signature() -> None:
    """A validly shaped token whose signature fails never returns claims, however they are crafted."""
    now = datetime.now(UTC)
    for claims in ({**CLAIMS, "exp": int(now.timestamp()) + 60}, {"tenant": "acme"}, {}):
        head = encode({"alg": "EdDSA", "kid": SIGNER.kid})
        token = f"{head}.{encode(claims)}.{b64url_encode(bytes(64))}"
        with pytest.raises(TokenInvalid, match="bad signature"):
            verify_compact(token, SpyKeys(SIGNER))
