"""Signing keys on disk: `<data dir>/signing-keys.json`, owner-only (0600 in a 0700 directory).

Generated on first start. `rotate` makes a new active key and keeps the old public key trusted
(and in the JWKS) for `keep_for`, so tokens and evidence it signed still verify. A running
server notices a rotation made by `gavel keys rotate-signing` within a second.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from gavel.crypto.keys import Ed25519KeyPair, KeySet, PublicKey, RetiredKey, b64url_decode, b64url_encode

FILE_NAME = "signing-keys.json"
RELOAD_SECONDS = 1.0


class KeyFileError(Exception):
    """The key file exists but cannot be used (unreadable, malformed, too permissive)."""


def _temporary_name(path: Path) -> Path:
    """A fresh, unpredictable name beside `path`: nobody can plant a file or symlink there first."""
    return path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(8).hex()}.tmp")


def _write_synced(path: Path, text: str) -> None:
    """Create `path` — it must not exist yet, and a symlink there is not followed — readable by the
    owner only, write `text` and flush it to disk. The mode is set before the secret is written."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = _temporary_name(path)
    try:
        _write_synced(tmp, text)
        os.replace(tmp, path)  # replaces a symlink at `path` itself, never the file it points to
    finally:
        tmp.unlink(missing_ok=True)


def _create_exclusively(path: Path, text: str) -> None:
    """Create the key file unless another process (a replica starting at the same moment) just
    did: the first one wins and everybody loads its keys."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = _temporary_name(path)
    try:
        _write_synced(tmp, text)
        os.link(tmp, path)  # fails if the file exists: never replaces someone else's keys
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def _encode(keys: KeySet) -> str:
    doc = {
        "active": {"seed": b64url_encode(keys.active.seed), "kid": keys.active.kid},
        "retired": [{"x": b64url_encode(r.public_key.raw), "kid": r.public_key.kid,
                     "retire_after": r.retire_after.isoformat()} for r in keys.retired],
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def _decode(text: str) -> KeySet:
    try:
        doc = json.loads(text)
        active = Ed25519KeyPair.from_seed(b64url_decode(doc["active"]["seed"]))
        retired = tuple(RetiredKey(PublicKey(b64url_decode(r["x"])), datetime.fromisoformat(r["retire_after"]))
                        for r in doc.get("retired", []))
    except (KeyError, TypeError, ValueError) as exc:
        raise KeyFileError(f"malformed signing key file: {exc}") from None
    return KeySet(active, retired)


class FileSigningKeys:
    def __init__(self, data_dir: str | os.PathLike, random_bytes: Callable[[int], bytes] = os.urandom,
                 clock: Callable[[], float] = time.monotonic, path: str | os.PathLike | None = None):
        # Replicas share one key set by pointing `path` at the same (secret) file.
        self.path = Path(path) if path is not None else Path(data_dir) / FILE_NAME
        self._random = random_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._mtime = 0.0
        self._checked = 0.0

    def ensure(self) -> KeySet:
        """Load the key set, creating the file on first use."""
        with self._lock:
            if not self.path.exists():
                _create_exclusively(self.path, _encode(KeySet(Ed25519KeyPair.from_seed(self._random(32)))))
            return self._load()

    def _load(self) -> KeySet:
        mode = self.path.stat().st_mode & 0o777
        if mode & 0o077:
            raise KeyFileError(f"{self.path} is readable by others (mode {mode:o}); run chmod 600 on it")
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise KeyFileError(f"cannot read {self.path}: {exc.strerror}") from None
        self._keys = _decode(text)
        self._mtime = self.path.stat().st_mtime
        return self._keys

    def keyset(self) -> KeySet:
        now = self._clock()
        if self._keys is None:
            return self.ensure()
        if now - self._checked > RELOAD_SECONDS:
            self._checked = now
            try:
                if self.path.stat().st_mtime != self._mtime:
                    with self._lock:
                        self._load()
            except (OSError, KeyFileError):
                pass  # keep signing with the keys we have; `gavel keys` reports file problems
        return self._keys

    def rotate(self, now: datetime, keep_for: timedelta) -> KeySet:
        with self._lock:
            current = self._load() if self.path.exists() else KeySet(Ed25519KeyPair.from_seed(self._random(32)))
            rotated = current.rotate(Ed25519KeyPair.from_seed(self._random(32)), now, keep_for)
            _write_private(self.path, _encode(rotated))
            return self._load()
