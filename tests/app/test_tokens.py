"""The decision-token checks of `gavel.app.tokens`, one by one, in process over a real SQLite store.

`verify`: signature and kid, then expiry (a token is dead from the second its `exp` names),
audience and issuer, tenant and environment, the claims the burn needs. `consume`: the record,
revocation, the bound args, then the burn, which only one caller wins; `revoke`: only an issued
token, and never reported revoked once it was burned. Each check is tried on its own, with every
other claim right, so a check that is weakened or dropped fails here (benchmarks/mutation.py
runs this file against every mutant of the token checks). The same refusals over a real server
are in tests/security/test_tokens.py.
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from gavel.adapters.db import SqlStore, migrate, sqlite_url
from gavel.app import tokens
from gavel.app.errors import (
    AgentMismatch,
    DecisionNotEnforced,
    InvalidTransition,
    NotFound,
    TokenInvalid,
    TokenReused,
    TokenRevoked,
)
from gavel.app.ledger import json_value
from gavel.app.principal import Principal
from gavel.crypto import jws
from gavel.crypto.keys import Ed25519KeyPair, KeySet
from gavel.ledger.canonical import JsonNumber

NOW = datetime(2026, 11, 22, 13, 45, 6, tzinfo=UTC)  # whole seconds: `exp` is a whole second
KEY = Ed25519KeyPair.from_seed(bytes(range(32)))
OTHER_KEY = Ed25519KeyPair.from_seed(bytes(range(1, 33)))
KEYS = KeySet(active=KEY)
SETTINGS = tokens.TokenSettings()
AGENT = Principal(key_id="key_agent", tenant_id="ten_a", environment="test", roles=frozenset({"agent"}),
                  principal="key:key_agent")
ARGS_HASH = "sha256:" + "ab" * 32


def issue(jti: str = "tok_1", now: datetime = NOW, **changes) -> tuple[str, tokens.TokenRecord]:
    fields = dict(jti=jti, tenant_id="ten_a", environment="test", decision_id=f"dec_{jti}", agent_id="agent-1",
                  action_type="refund_create", amount=Decimal("120.50"), currency="USD", args_hash=ARGS_HASH, now=now,
                  enforced=True, outcome="allow")
    return tokens.issue(KEYS, SETTINGS, **(fields | changes))


def signed(**claim_changes) -> str:
    """A token signed by the server's key whose claims are a genuine token's with some changed or
    removed (a value of None removes the claim)."""
    claims = dict(jws.decode_unverified_claims(issue()[0]))
    for name, value in claim_changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return jws.sign_compact(claims, KEY)


def verify(token: str, now: datetime = NOW, principal: Principal = AGENT) -> dict:
    return tokens.verify(KEYS, SETTINGS, principal, token, now)


# -- verify ------------------------------------------------------------------------------------


def test_a_genuine_token_verifies_to_its_claims() -> None:
    token, record = issue()
    claims = verify(token)
    assert claims == {
        "iss": "gavel", "aud": "gavel", "sub": "agent-1", "jti": "tok_1", "iat": int(NOW.timestamp()),
        "exp": int(record.expires_at.timestamp()), "tenant": "ten_a", "env": "test", "decision_id": "dec_tok_1",
        "action_type": "refund_create", "args_hash": ARGS_HASH, "amount": "120.5", "currency": "USD",
        "enforced": True, "outcome": "allow",
    }
    assert record.expires_at == NOW + SETTINGS.ttl


def test_a_token_is_dead_from_the_second_its_exp_names() -> None:
    token, record = issue()
    exp = datetime.fromtimestamp(int(record.expires_at.timestamp()), UTC)
    assert verify(token, exp - timedelta(microseconds=1))["jti"] == "tok_1"
    with pytest.raises(TokenInvalid, match="^decision token refused: expired$"):
        verify(token, exp)
    with pytest.raises(TokenInvalid, match="^decision token refused: expired$"):
        verify(token, exp + timedelta(days=1))


@pytest.mark.parametrize("exp", [None, "2000000000", JsonNumber(2_000_000_000.5), [2_000_000_000]], ids=repr)
def test_an_exp_that_is_not_a_whole_number_is_refused_as_expired(exp) -> None:
    with pytest.raises(TokenInvalid, match="^decision token refused: expired$"):
        verify(signed(exp=exp))


@pytest.mark.parametrize(("claim", "value"), [("aud", "someone-else"), ("iss", "not-gavel"), ("aud", None),
                                              ("iss", None)])
def test_audience_and_issuer_are_each_checked(claim: str, value) -> None:
    with pytest.raises(TokenInvalid, match="^decision token refused: wrong audience or issuer$"):
        verify(signed(**{claim: value}))


@pytest.mark.parametrize(("claim", "value"), [("tenant", "ten_b"), ("env", "live"), ("tenant", None), ("env", None)])
def test_tenant_and_environment_are_each_checked(claim: str, value) -> None:
    with pytest.raises(TokenInvalid, match="^decision token refused: issued to another tenant or environment$"):
        verify(signed(**{claim: value}))


def test_a_caller_of_another_tenant_or_environment_is_refused() -> None:
    token, _ = issue()
    for other in (Principal("key_b", "ten_b", "test", frozenset({"agent"}), "key:key_b"),
                  Principal("key_l", "ten_a", "live", frozenset({"agent"}), "key:key_l")):
        with pytest.raises(TokenInvalid, match="issued to another tenant or environment"):
            verify(token, principal=other)


@pytest.mark.parametrize(("claim", "value"), [("jti", None), ("jti", 7), ("decision_id", None), ("decision_id", 7)])
def test_the_claims_the_burn_needs_must_be_strings(claim: str, value) -> None:
    with pytest.raises(TokenInvalid, match="^decision token refused: missing claims$"):
        verify(signed(**{claim: value}))


def test_a_token_signed_by_another_key_or_kid_is_refused() -> None:
    token, _ = issue()
    claims = jws.decode_unverified_claims(token)
    with pytest.raises(TokenInvalid, match="^decision token refused: unknown kid$"):
        verify(jws.sign_compact(claims, OTHER_KEY))
    header, payload, _ = token.split(".")
    forged = f"{header}.{payload}.{jws.sign_compact(claims, OTHER_KEY).split('.')[2]}"
    with pytest.raises(TokenInvalid, match="^decision token refused: bad signature$"):
        verify(forged)


def test_a_retired_key_is_trusted_until_its_retirement() -> None:
    token, _ = issue(now=NOW)
    rotated = KEYS.rotate(OTHER_KEY, NOW, keep_for=timedelta(minutes=1))
    assert tokens.verify(rotated, SETTINGS, AGENT, token, NOW + timedelta(minutes=1))["jti"] == "tok_1"
    with pytest.raises(TokenInvalid, match="unknown kid"):
        tokens.verify(rotated, SETTINGS, AGENT, token, NOW + timedelta(minutes=1, microseconds=1))


# -- consume and revoke, over a real store ------------------------------------------------------


@pytest.fixture(scope="module")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tokens") / "template.db"
    migrate(sqlite_url(path))
    return path


@pytest.fixture
async def store(migrated_database: Path, tmp_path: Path) -> AsyncIterator[SqlStore]:
    path = tmp_path / "gavel.db"
    shutil.copyfile(migrated_database, path)  # a copy of one migrated file: much faster than migrating
    store = SqlStore(sqlite_url(path))
    yield store
    await store.close()


async def stored(store: SqlStore, jti: str = "tok_1", **changes) -> dict:
    """Store a token's record; return its claims (as `verify` would, for the caller it was issued to)."""
    token, record = issue(jti, **changes)
    await store.write(lambda uow: uow.tokens.add(record))
    return jws.decode_unverified_claims(token)


def consume(store: SqlStore, claims: dict, args_hash: str = ARGS_HASH, principal: Principal = AGENT,
            at: datetime = NOW, accept_unenforced: bool = False):
    return store.write(lambda uow: tokens.consume(uow, principal, claims, args_hash, at, os.urandom,
                                                  accept_unenforced=accept_unenforced))


def revoke(store: SqlStore, jti: str, principal: Principal = AGENT):
    return store.write(lambda uow: tokens.revoke(uow, principal, jti, NOW, os.urandom))


async def state(store: SqlStore, jti: str = "tok_1") -> str:
    return (await store.read(lambda uow: uow.tokens.get(jti))).state


async def events(store: SqlStore) -> list[tuple[str, dict]]:
    """The chain's events as (type, data); each must be about the token's decision."""
    stored_events = await store.read(lambda uow: uow.ledger.events("ten_a", "test", 1, 100))
    for e in stored_events:
        payload = json_value(e.payload_json)
        assert e.subject == payload["subject"] == payload["decision_id"] == f"dec_{payload['data']['jti']}"
    return [(e.type, json_value(e.payload_json)["data"]) for e in stored_events]


async def test_consume_burns_the_token_once_and_records_it(store: SqlStore) -> None:
    claims = await stored(store)
    burned = await consume(store, claims)
    expected = {"valid": True, "jti": "tok_1", "decision_id": "dec_tok_1", "agent_id": "agent-1",
                "action_type": "refund_create", "amount": "120.5", "currency": "USD", "enforced": True,
                "outcome": "allow"}
    assert {name: burned.get(name) for name in expected} == expected  # what the tool boundary acts on
    assert await state(store) == "consumed"
    assert await events(store) == [("token.consumed", {"jti": "tok_1", "agent_id": "agent-1",
                                                       "args_hash": ARGS_HASH, "consumed_by": "key:key_agent",
                                                       "enforced": True, "outcome": "allow"})]
    with pytest.raises(TokenReused, match="^decision token was already used$"):
        await consume(store, claims)
    assert len(await events(store)) == 1


async def test_consume_answers_empty_fields_for_claims_the_token_does_not_carry(store: SqlStore) -> None:
    claims = await stored(store, amount=None, currency=None)
    assert "amount" not in claims and "currency" not in claims
    del claims["action_type"]
    burned = await consume(store, claims)
    assert (burned["action_type"], burned["amount"], burned["currency"]) == ("", "", "")


async def test_consume_without_args_hash_skips_only_that_check(store: SqlStore) -> None:
    claims = await stored(store)
    assert (await consume(store, claims, args_hash=""))["valid"] is True


async def test_consume_refuses_other_args(store: SqlStore) -> None:
    claims = await stored(store)
    with pytest.raises(TokenInvalid, match="^decision token refused: the action's args hash differs from the one the "
                                           "token is bound to$"):
        await consume(store, claims, args_hash="sha256:" + "cd" * 32)
    assert await state(store) == "issued" and await events(store) == []


async def test_consume_refuses_an_unknown_token_or_one_of_another_tenant_or_environment(store: SqlStore) -> None:
    claims = await stored(store, "tok_b", tenant_id="ten_b")
    live_claims = await stored(store, "tok_l", environment="live")
    for unknown in ({**claims, "jti": "tok_missing"}, claims, live_claims):
        with pytest.raises(TokenInvalid, match="^decision token refused: unknown token$"):
            await consume(store, unknown)
    assert (await state(store, "tok_b"), await state(store, "tok_l")) == ("issued", "issued")


async def test_a_revoked_token_is_refused_as_revoked(store: SqlStore) -> None:
    claims = await stored(store)
    assert await revoke(store, "tok_1") == {"revoked": True, "jti": "tok_1"}
    with pytest.raises(TokenRevoked, match="^decision token was revoked$"):
        await consume(store, claims)
    with pytest.raises(TokenRevoked, match="^decision token was revoked$"):  # revocation is checked before the args
        await consume(store, claims, args_hash="sha256:" + "cd" * 32)
    assert await state(store) == "revoked"
    assert await events(store) == [("token.revoked", {"jti": "tok_1", "revoked_by": "key:key_agent"})]


class _OtherWriterFirst:
    """The token repository of a unit that another writer (another replica) beats to the row: it
    runs `meanwhile` just before this unit's own state change, after the unit has read the row."""

    def __init__(self, repo, meanwhile: Callable[[], object]) -> None:
        self._repo = repo
        self._meanwhile = meanwhile

    def get(self, jti: str):
        return self._repo.get(jti)

    def consume(self, jti: str, at: datetime) -> bool:
        self._meanwhile()
        return self._repo.consume(jti, at)

    def revoke(self, jti: str, at: datetime) -> bool:
        self._meanwhile()
        return self._repo.revoke(jti, at)


def _racing(uow, meanwhile: Callable[[object], object]):
    racing = copy.copy(uow)
    racing.tokens = _OtherWriterFirst(uow.tokens, lambda: meanwhile(uow))
    return racing


async def test_a_revoke_that_wins_the_race_with_a_burn_makes_the_burn_report_revoked(store: SqlStore) -> None:
    claims = await stored(store)

    def burn_after_a_revoke(uow):
        return tokens.consume(_racing(uow, lambda u: u.tokens.revoke("tok_1", NOW)), AGENT, claims, ARGS_HASH,
                              NOW, os.urandom)

    with pytest.raises(TokenRevoked, match="^decision token was revoked$"):
        await store.write(burn_after_a_revoke)


async def test_a_burn_that_wins_the_race_with_a_revoke_makes_the_revoke_refused(store: SqlStore) -> None:
    await stored(store)

    def revoke_after_a_burn(uow):
        return tokens.revoke(_racing(uow, lambda u: u.tokens.consume("tok_1", NOW)), AGENT, "tok_1", NOW,
                             os.urandom)

    with pytest.raises(InvalidTransition, match="already used"):
        await store.write(revoke_after_a_burn)


async def test_revoke_refuses_a_used_token_and_is_idempotent(store: SqlStore) -> None:
    claims = await stored(store)
    await stored(store, "tok_2")
    await consume(store, claims)
    with pytest.raises(InvalidTransition, match="^the token was already used; it can no longer be revoked$"):
        await revoke(store, "tok_1")
    assert await revoke(store, "tok_2") == {"revoked": True, "jti": "tok_2"}
    assert await revoke(store, "tok_2") == {"revoked": True, "jti": "tok_2"}
    assert [t for t, _ in await events(store)] == ["token.consumed", "token.revoked"]  # one event per change


async def test_revoke_does_not_see_other_tenants_or_environments(store: SqlStore) -> None:
    await stored(store, "tok_b", tenant_id="ten_b")
    await stored(store, "tok_l", environment="live")
    for jti in ("tok_b", "tok_l", "tok_missing"):
        with pytest.raises(NotFound, match=f"^no token `{jti}`$"):
            await revoke(store, jti)
    assert (await state(store, "tok_b"), await state(store, "tok_l")) == ("issued", "issued")


@pytest.mark.parametrize("outcome", ["deny", "require_approval"])
async def test_an_unenforced_token_whose_rules_did_not_allow_is_refused_unspent(store: SqlStore, outcome: str) -> None:
    claims = await stored(store, enforced=False, outcome=outcome)
    with pytest.raises(DecisionNotEnforced, match=f"its rules said {outcome}: the action must not proceed") as refused:
        await consume(store, claims)
    assert refused.value.metadata == {"outcome": outcome}
    with pytest.raises(DecisionNotEnforced):  # refusing is the default, not something the boundary asks for
        await store.write(lambda uow: tokens.consume(uow, AGENT, claims, ARGS_HASH, NOW, os.urandom))
    assert await state(store) == "issued"
    assert await events(store) == []
    burned = await consume(store, claims, accept_unenforced=True)  # a boundary in shadow mode on purpose
    assert (burned["enforced"], burned["outcome"]) == (False, outcome)
    assert await state(store) == "consumed"


async def test_an_unenforced_allow_and_an_enforced_token_need_no_shadow_mode(store: SqlStore) -> None:
    burned = await consume(store, await stored(store, "tok_1", enforced=False, outcome="allow"))
    assert (burned["enforced"], burned["outcome"]) == (False, "allow")
    burned = await consume(store, await stored(store, "tok_2", enforced=True, outcome="allow"))
    assert (burned["enforced"], burned["outcome"]) == (True, "allow")


async def test_a_key_bound_to_other_agents_cannot_burn_or_revoke(store: SqlStore) -> None:
    claims = await stored(store)
    bound = Principal(key_id="key_b", tenant_id="ten_a", environment="test", roles=frozenset({"agent"}),
                      principal="key:key_b", agents=frozenset({"agent-2"}))
    with pytest.raises(AgentMismatch):
        await consume(store, claims, principal=bound)
    with pytest.raises(AgentMismatch):
        await revoke(store, "tok_1", principal=bound)
    assert await state(store) == "issued"
