"""Decision tokens: compact JWS (EdDSA) bound to one decision and its exact action.

Checks when a token is presented run in API.md's order, each refusing with its own reason:
signature and `kid` → expiry, audience, tenant, environment → the key's agents (AGENT_MISMATCH)
→ revocation → bound args → enforcement (DECISION_NOT_ENFORCED) → burn.

A token says whether its decision was enforced and what its outcome was (claims `enforced` and
`outcome`): a MONITOR or WARN decision gets a token whatever the rules said, and the tool
boundary must be able to tell. ConsumeToken refuses such a token when its outcome is not allow,
unless the boundary asks for shadow-mode tokens (`accept_unenforced`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from gavel.app import ledger
from gavel.app.errors import DecisionNotEnforced, InvalidTransition, NotFound, TokenInvalid, TokenReused, TokenRevoked
from gavel.app.model import OUTCOMES, TokenRecord
from gavel.app.ports import UnitOfWork
from gavel.app.principal import Principal
from gavel.crypto import jws
from gavel.crypto.keys import KeySet
from gavel.ledger.canonical import canonical_decimal


class SigningKeys(Protocol):
    def keyset(self) -> KeySet: ...


@dataclass(frozen=True)
class TokenSettings:
    issuer: str = "gavel"
    audience: str = "gavel"
    ttl: timedelta = timedelta(minutes=5)


def issue(keys: KeySet, settings: TokenSettings, *, jti: str, tenant_id: str, environment: str,
          decision_id: str, agent_id: str, action_type: str, amount: Decimal | None, currency: str | None,
          args_hash: str, now: datetime, enforced: bool, outcome: str) -> tuple[str, TokenRecord]:
    iat = int(now.timestamp())
    expires = now + settings.ttl
    claims: dict[str, Any] = {
        "iss": settings.issuer, "aud": settings.audience, "sub": agent_id, "jti": jti,
        "iat": iat, "exp": int(expires.timestamp()), "tenant": tenant_id, "env": environment,
        "decision_id": decision_id, "action_type": action_type, "args_hash": args_hash,
        "enforced": enforced, "outcome": outcome,
    }
    if amount is not None:
        claims["amount"] = canonical_decimal(amount)
    if currency:
        claims["currency"] = currency
    token = jws.sign_compact(claims, keys.active)
    record = TokenRecord(jti, tenant_id, environment, decision_id, agent_id, args_hash, now, expires)
    return token, record


def verify(keys: KeySet, settings: TokenSettings, principal: Principal, token: str, now: datetime) -> dict:
    """Signature, kid, expiry, audience, tenant and environment; raises TokenInvalid."""
    try:
        claims = jws.verify_compact(token, lambda kid: keys.find(kid, now))
    except jws.TokenInvalid as exc:
        raise TokenInvalid(f"decision token refused: {exc.detail}") from None
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= now.timestamp():
        raise TokenInvalid("decision token refused: expired")
    if claims.get("aud") != settings.audience or claims.get("iss") != settings.issuer:
        raise TokenInvalid("decision token refused: wrong audience or issuer")
    if claims.get("tenant") != principal.tenant_id or claims.get("env") != principal.environment:
        raise TokenInvalid("decision token refused: issued to another tenant or environment")
    if not isinstance(claims.get("jti"), str) or not isinstance(claims.get("decision_id"), str):
        raise TokenInvalid("decision token refused: missing claims")
    return claims


def _enforcement(uow: UnitOfWork, record: TokenRecord, claims: dict) -> tuple[bool, str]:
    """(enforced, outcome) of the token's decision: from its signed claims, or — for a token issued
    before tokens carried them — from the decision record."""
    enforced, outcome = claims.get("enforced"), claims.get("outcome")
    if isinstance(enforced, bool) and outcome in OUTCOMES:
        return enforced, outcome
    decision = uow.decisions.get(record.tenant_id, record.environment, record.decision_id)
    if decision is None:
        raise TokenInvalid("decision token refused: its decision is unknown")
    return decision.enforced, decision.outcome


def consume(uow: UnitOfWork, principal: Principal, claims: dict, presented_args_hash: str, now: datetime,
            random_bytes: Callable[[int], bytes], accept_unenforced: bool = False) -> dict:
    """The key's agents → revocation → bound args → enforcement → burn, inside one write unit."""
    record = uow.tokens.get(claims["jti"])
    if record is None or record.tenant_id != principal.tenant_id or record.environment != principal.environment:
        raise TokenInvalid("decision token refused: unknown token")
    principal.check_acts_for(record.agent_id)
    if record.state == "revoked":
        raise TokenRevoked("decision token was revoked")
    if presented_args_hash and presented_args_hash != record.args_hash:
        raise TokenInvalid("decision token refused: the action's args hash differs from the one the token is bound to")
    enforced, outcome = _enforcement(uow, record, claims)
    if not enforced and outcome != "allow" and not accept_unenforced:
        raise DecisionNotEnforced(
            f"decision `{record.decision_id}` was made in MONITOR or WARN mode and its rules said {outcome}: the "
            "action must not proceed; a boundary running in shadow mode may accept it with accept_unenforced",
            metadata={"outcome": outcome})
    if not uow.tokens.consume(record.jti, now):
        latest = uow.tokens.get(record.jti)
        if latest is not None and latest.state == "revoked":
            raise TokenRevoked("decision token was revoked")
        raise TokenReused("decision token was already used")
    ledger.record(uow, record.tenant_id, record.environment, type="token.consumed", subject=record.decision_id,
                  decision_id=record.decision_id, at=now, random_bytes=random_bytes,
                  data={"jti": record.jti, "agent_id": record.agent_id, "args_hash": record.args_hash,
                        "consumed_by": principal.principal, "enforced": enforced, "outcome": outcome})
    return {
        "valid": True, "jti": record.jti, "decision_id": record.decision_id, "agent_id": record.agent_id,
        "action_type": claims.get("action_type", ""), "amount": claims.get("amount", ""),
        "currency": claims.get("currency", ""), "enforced": enforced, "outcome": outcome,
    }


def revoke(uow: UnitOfWork, principal: Principal, jti: str, now: datetime,
           random_bytes: Callable[[int], bytes]) -> dict:
    record = uow.tokens.get(jti)
    if record is None or record.tenant_id != principal.tenant_id or record.environment != principal.environment:
        raise NotFound(f"no token `{jti}`")
    principal.check_acts_for(record.agent_id)
    if record.state == "issued":
        if uow.tokens.revoke(jti, now):
            ledger.record(uow, record.tenant_id, record.environment, type="token.revoked",
                          subject=record.decision_id, decision_id=record.decision_id, at=now,
                          random_bytes=random_bytes, data={"jti": jti, "revoked_by": principal.principal})
        else:
            # Another writer (a burn on another replica) changed the row after it was read: answer
            # for the state that won, never "revoked" for a token that was used.
            record = uow.tokens.get(jti) or record
    if record.state == "consumed":
        raise InvalidTransition("the token was already used; it can no longer be revoked")
    return {"revoked": True, "jti": jti}
