"""API keys: format, hashing and authentication.

A key reads `sk_test_<key id>_<secret>`, `sk_live_<key id>_<secret>` or
`gk_admin_<key id>_<secret>`. The key id is public (it names the key in lists and logs); the
secret is 256 random bits. Only SHA-256 of the whole key is stored — a fast hash is right for
high-entropy secrets — and it is compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from gavel.app.errors import Unauthenticated
from gavel.app.model import ApiKeyRecord
from gavel.app.ports import UnitOfWork
from gavel.app.principal import Principal

PREFIXES = {"sk_test_": "test", "sk_live_": "live", "gk_admin_": None}
_KEY = re.compile(r"(sk_test_|sk_live_|gk_admin_)(k[a-z2-7]{15})_([A-Za-z0-9_-]{43})")
CACHE_SECONDS = 1.0


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").lower().rstrip("=")


@dataclass(frozen=True, slots=True)
class NewKey:
    key_id: str
    text: str  # shown once to the caller, never stored
    secret_hash: bytes


def mint_key(environment: str | None, random_bytes: Callable[[int], bytes]) -> NewKey:
    """A fresh key for an environment ("test"/"live") or, with None, a platform operator key."""
    prefix = {"test": "sk_test_", "live": "sk_live_", None: "gk_admin_"}[environment]
    key_id = "k" + _b32(random_bytes(10))[:15]
    secret = base64.urlsafe_b64encode(random_bytes(32)).decode("ascii").rstrip("=")
    text = f"{prefix}{key_id}_{secret}"
    return NewKey(key_id, text, hash_key(text))


def hash_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def parse_key(text: str) -> tuple[str, str | None]:
    """(key id, environment) of a well-formed key; raises Unauthenticated otherwise."""
    m = _KEY.fullmatch(text or "")
    if m is None:
        raise Unauthenticated("malformed API key")
    return m.group(2), PREFIXES[m.group(1)]


def principal_of(record: ApiKeyRecord) -> Principal:
    return Principal(record.key_id, record.tenant_id, record.environment, frozenset(record.roles), record.principal,
                     frozenset(record.agents))


class KeyCache:
    """Recently verified keys, so the hot path skips the database; revocation evicts at once.

    A revoked key id is remembered for good (revocation is final): an authentication that read the
    key's record just before the revocation committed, and puts it here just after the eviction,
    cannot bring the revoked key back for a cache lifetime."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, ttl: float = CACHE_SECONDS):
        self._clock = clock
        self._ttl = ttl
        self._entries: dict[str, tuple[float, bytes, Principal]] = {}
        self._revoked: set[str] = set()

    def get(self, key_id: str, secret_hash: bytes) -> Principal | None:
        entry = self._entries.get(key_id)
        if entry is None or entry[0] < self._clock():
            return None
        if not hmac.compare_digest(entry[1], secret_hash):
            return None
        return entry[2]

    def put(self, key_id: str, secret_hash: bytes, principal: Principal) -> None:
        if key_id in self._revoked:
            return
        if len(self._entries) > 100_000:
            self._entries.clear()
        self._entries[key_id] = (self._clock() + self._ttl, secret_hash, principal)

    def evict(self, key_id: str) -> None:
        """The key was revoked: drop it, and never cache it again."""
        self._entries.pop(key_id, None)
        if len(self._revoked) > 1_000_000:  # bounded; a forgotten id is still refused by the store
            self._revoked.clear()
        self._revoked.add(key_id)


def ensure_not_revoked(uow: UnitOfWork, principal: Principal) -> None:
    """For long-lived calls (streams): refuse to go on once the caller's key has been revoked.
    Authentication happens when a call starts; a stream re-checks its key on every poll."""
    record = uow.keys.get(principal.key_id)
    if record is None or record.revoked_at is not None:
        raise Unauthenticated("the API key was revoked")


def check_record(record: ApiKeyRecord | None, environment: str | None, secret_hash: bytes) -> Principal:
    # Compare even when the record is missing, so timing does not reveal which key ids exist.
    stored = record.secret_hash if record is not None else b"\x00" * 32
    matches = hmac.compare_digest(stored, secret_hash)
    if record is None or not matches or record.revoked_at is not None or record.environment != environment:
        raise Unauthenticated("invalid or revoked API key")
    return principal_of(record)
