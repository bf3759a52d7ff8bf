"""Policy bundles: the rule and data files of one policy version, with a manifest, packed as
a deterministic `.tar.gz` and optionally signed by the publisher (Ed25519).

An archive holds `manifest.json`, optionally `signature.json`, and each file as
`files/<name>` (names like `refunds.rules` or `data/vendors.json`). The manifest is canonical
JSON:

    {"format": "gavel.bundle/1", "bundle_hash", "version", "created_at", "author",
     "source_revision", "files": [{"name", "sha256", "bytes"}, …]}

and the signature is `{"alg": "EdDSA", "kid", "sig"}`, `sig` being the base64url Ed25519
signature of the manifest's canonical bytes. The manifest lists every file's SHA-256, so
signing it signs the content. `bundle_hash` is `engine.policy.bundle_hash` over the files.

This module is an edge: it reads directories and runs `git rev-parse HEAD`. Reading an archive
never touches the disk, and anything unexpected in it refuses the whole bundle (`BundleError`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from gavel.crypto.keys import Ed25519KeyPair, PublicKey, b64url_decode, b64url_encode
from gavel.engine.policy import bundle_hash
from gavel.lang.data import is_data_name
from gavel.lang.diagnostics import Diagnostic, error
from gavel.lang.source import Span
from gavel.ledger.canonical import canonical_bytes
from gavel.sources import RULE_SUFFIX, SourceError, read_bundle_files

FORMAT = "gavel.bundle/1"
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "signature.json"
FILES_DIR = "files/"
SIGNATURE_ALG = "EdDSA"
MAX_ARCHIVE_BYTES = 16 * 1024 * 1024
MAX_FILES = 10_000
UNPACKED_FACTOR = 4  # the tar stream may be this many times max_bytes (headers, padding), no more
MAX_NAME_LENGTH = 255
MAX_LABEL_LENGTH = 256
GIT_TIMEOUT_SECONDS = 5.0

_MANIFEST_KEYS = frozenset(("format", "bundle_hash", "version", "created_at", "author", "source_revision", "files"))
_FILE_KEYS = frozenset(("name", "sha256", "bytes"))
_SIGNATURE_KEYS = frozenset(("alg", "kid", "sig"))
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_BUNDLE_HASH = re.compile(r"sha256:[0-9a-f]{64}")
_GIT_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]|[\ud800-\udfff]")

Status = str  # "unsigned" | "valid" | "invalid" | "unknown_key"


class BundleError(Exception):
    """A bundle that cannot be built or read; `diagnostics` when its rules do not compile."""

    def __init__(self, message: str, diagnostics: tuple[Diagnostic, ...] = ()):
        super().__init__(message)
        self.message = message
        self.diagnostics = diagnostics


@dataclass(frozen=True)
class Bundle:
    """The files of one policy version (bundle name → text) with their manifest and signature."""

    files: dict[str, str]
    manifest: dict
    signature: dict | None = None

    @cached_property
    def bundle_hash(self) -> str:
        return bundle_hash(self.files)

    @property
    def version(self) -> str:
        return self.manifest.get("version") or ""


# ---------------------------------------------------------------- making bundles

def file_entries(files: Mapping[str, str]) -> list[dict]:
    """The manifest's `files`: name, SHA-256 (hex) and size in bytes of each file, by name."""
    out = []
    for name in sorted(files):
        data = files[name].encode("utf-8")
        out.append({"name": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})
    return out


def make_bundle(files: Mapping[str, str], *, version: str, author: str | None = None,
                created_at: datetime | None = None, source_revision: str | None = None,
                sign_with: Ed25519KeyPair | None = None) -> Bundle:
    """A bundle of these files with a fresh manifest (and signature); names are checked, rules are not."""
    for name in files:
        problem = name_problem(name)
        if problem is not None:
            raise BundleError(f"`{name}`: {problem}")
    if not isinstance(version, str) or not version or len(version) > MAX_LABEL_LENGTH:
        raise BundleError(f"the version label must be 1 to {MAX_LABEL_LENGTH} characters")
    if created_at is not None and created_at.utcoffset() is None:
        raise BundleError("created_at must be a timezone-aware time")
    manifest = {
        "format": FORMAT,
        "bundle_hash": bundle_hash(files),
        "version": version,
        "created_at": _iso(created_at) if created_at is not None else None,
        "author": author,
        "source_revision": source_revision,
        "files": file_entries(files),
    }
    signature = sign_manifest(manifest, sign_with) if sign_with is not None else None
    return Bundle(dict(sorted(files.items())), manifest, signature)


def sign_manifest(manifest: Mapping[str, Any], key: Ed25519KeyPair) -> dict:
    """`{"alg": "EdDSA", "kid", "sig"}` over the manifest's canonical bytes."""
    return {"alg": SIGNATURE_ALG, "kid": key.kid, "sig": b64url_encode(key.sign(canonical_bytes(manifest)))}


def bundle_from_directory(path: str | os.PathLike, version: str = "rules-dir",
                          max_file_bytes: int | None = None) -> Bundle:
    """The bundle of a rules directory as it is now (no archive, no signature, no git, no clock).

    Raises SourceError for unreadable files (or one past `max_file_bytes`, by default
    `sources.rules_file_limit()`); compiling is `Engine.from_bundle`'s job."""
    files = read_bundle_files([path], max_file_bytes)
    for f in files:
        problem = name_problem(f.name)
        if problem is not None:
            raise SourceError(f.display, problem)
    return make_bundle({f.name: f.text for f in files}, version=version)


def build_archive(directory: str | os.PathLike, *, version: str, author: str, now: datetime,
                  source_revision: str | None = None, sign_with: Ed25519KeyPair | None = None) -> bytes:
    """Read, compile and pack a rules directory; BundleError (with diagnostics) if it does not compile.

    The bytes depend only on the files and the arguments: the same input gives the same archive."""
    from gavel.api import Engine, PolicyError

    root = Path(directory)
    if not root.is_dir():
        raise BundleError(f"{directory}: not a directory")
    try:
        files = read_bundle_files([root])
    except SourceError as exc:
        where = Span.point(exc.path, exc.line, exc.column)
        raise BundleError(str(exc), (error(exc.code or "E007", exc.message, where),)) from None
    if not any(f.name.endswith(RULE_SUFFIX) for f in files):
        raise BundleError(f"no .rules files in {directory}")
    try:
        Engine.from_files(files)
    except PolicyError as exc:
        raise BundleError(str(exc), exc.diagnostics) from None
    bundle = make_bundle({f.name: f.text for f in files}, version=version, author=author, created_at=now,
                         source_revision=source_revision, sign_with=sign_with)
    return write_archive(bundle)


def write_archive(bundle: Bundle) -> bytes:
    """The `.tar.gz` of a bundle: entries sorted by name, fixed times, owners and modes, gzip mtime 0."""
    entries = {FILES_DIR + name: text.encode("utf-8") for name, text in bundle.files.items()}
    entries[MANIFEST_NAME] = canonical_bytes(bundle.manifest)
    if bundle.signature is not None:
        entries[SIGNATURE_NAME] = canonical_bytes(bundle.signature)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(entries[name]), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(entries[name]))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


# ---------------------------------------------------------------- reading archives

def read_archive(data: bytes, *, max_bytes: int = MAX_ARCHIVE_BYTES, max_files: int = MAX_FILES) -> Bundle:
    """The bundle in a `.tar.gz`, checked entry by entry; BundleError saying what is wrong.

    `max_bytes` bounds the archive and the total size of its files; the unpacked tar stream
    may be at most `UNPACKED_FACTOR` times that (a gzip bomb stops there)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise BundleError("a bundle archive is bytes")
    data = bytes(data)
    if len(data) > max_bytes:
        raise BundleError(f"the archive is larger than {max_bytes} bytes")
    if not data.startswith(b"\x1f\x8b"):
        raise BundleError("not a gzip archive: a bundle is the .tar.gz made by `gavel bundle build`")
    entries = _untar(_gunzip(data, UNPACKED_FACTOR * max_bytes), max_bytes, max_files)
    manifest_bytes = entries.pop(MANIFEST_NAME, None)
    if manifest_bytes is None:
        raise BundleError(f"the archive has no {MANIFEST_NAME}")
    signature_bytes = entries.pop(SIGNATURE_NAME, None)
    manifest = _manifest(manifest_bytes, max_files)
    listed = {f["name"]: f for f in manifest["files"]}
    files: dict[str, str] = {}
    for entry, content in sorted(entries.items()):
        if not entry.startswith(FILES_DIR):
            raise BundleError(f"unexpected entry `{entry}`: a bundle holds {MANIFEST_NAME}, {SIGNATURE_NAME} "
                              f"and {FILES_DIR}…")
        name = entry[len(FILES_DIR):]
        expected = listed.get(name)
        if expected is None:
            raise BundleError(f"`{entry}` is not listed in the manifest")
        if len(content) != expected["bytes"] or hashlib.sha256(content).hexdigest() != expected["sha256"]:
            raise BundleError(f"`{entry}` does not match its sha256 in the manifest")
        try:
            files[name] = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BundleError(f"`{entry}` is not valid UTF-8 (byte {exc.start})") from None
    missing = sorted(set(listed) - set(files))
    if missing:
        raise BundleError(f"`{FILES_DIR}{missing[0]}` is listed in the manifest but missing from the archive")
    if bundle_hash(files) != manifest["bundle_hash"]:
        raise BundleError("the manifest's bundle_hash does not match its files")
    signature = _signature(signature_bytes) if signature_bytes is not None else None
    return Bundle(files, manifest, signature)


def _gunzip(data: bytes, limit: int) -> bytes:
    inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out = bytearray()
    pending = data
    try:
        while not inflate.eof:
            chunk = inflate.decompress(pending, limit + 1 - len(out))
            out += chunk
            if len(out) > limit:
                raise BundleError(f"the archive unpacks to more than {limit} bytes")
            progressed = chunk or len(inflate.unconsumed_tail) != len(pending)
            pending = inflate.unconsumed_tail
            if not progressed:
                break
    except zlib.error as exc:
        raise BundleError(f"not a valid gzip archive: {exc}") from None
    if not inflate.eof:
        raise BundleError("the gzip stream is truncated")
    if inflate.unused_data:
        raise BundleError("unexpected data after the gzip stream")
    return bytes(out)


def _untar(data: bytes, max_bytes: int, max_files: int) -> dict[str, bytes]:
    entries: dict[str, bytes] = {}
    total = 0
    seen = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            while (member := tar.next()) is not None:
                seen += 1
                if seen > max_files + 2:
                    raise BundleError(f"the archive has more than {max_files} files")
                name = member.name
                problem = _path_problem(name)
                if problem is not None:
                    raise BundleError(f"refused entry `{name}`: {problem}")
                if member.issym() or member.islnk():
                    raise BundleError(f"refused entry `{name}`: links are not allowed")
                if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE) or member.issparse():
                    raise BundleError(f"refused entry `{name}`: only regular files are allowed")
                if name in entries:
                    raise BundleError(f"refused entry `{name}`: the name appears twice")
                total += member.size
                if total > max_bytes:
                    raise BundleError(f"the files in the archive add up to more than {max_bytes} bytes")
                stream = tar.extractfile(member)
                entries[name] = stream.read() if stream is not None else b""
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError(f"not a valid tar archive: {exc}") from None
    return entries


def _path_problem(name: str) -> str | None:
    """Why an archive path or bundle name is unsafe, if it is."""
    if not name:
        return "an empty name"
    if name.startswith("/"):
        return "absolute paths are not allowed"
    if _CONTROL.search(name):
        return "control characters, backslashes and undecodable bytes are not allowed"
    parts = name.split("/")
    if ".." in parts:
        return "`..` is not allowed"
    if any(p in ("", ".") for p in parts):
        return "empty and `.` path segments are not allowed"
    if len(name) > MAX_NAME_LENGTH + len(FILES_DIR):
        return f"names are at most {MAX_NAME_LENGTH} characters"
    return None


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a file of a bundle, if it cannot: a safe relative path to a
    `.rules` file, or a data file `data/…/NAME.json`, with no hidden segment."""
    if not isinstance(name, str):
        return "a file name must be a string"
    problem = _path_problem(name)
    if problem is not None:
        return problem
    if len(name) > MAX_NAME_LENGTH:
        return f"names are at most {MAX_NAME_LENGTH} characters"
    if any(p.startswith(".") for p in name.split("/")):
        return "hidden files are not part of a bundle"
    if not (name.endswith(RULE_SUFFIX) or is_data_name(name)):
        return "a bundle holds only `.rules` files and data files `data/…/NAME.json`"
    return None


def _strict_json(data: bytes, what: str) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict:
        out = dict(items)
        if len(out) != len(items):
            raise ValueError("a key given twice")
        return out

    def constant(name: str) -> Any:
        raise ValueError(f"`{name}` is not JSON")

    def no_float(text: str) -> Any:
        raise ValueError(f"unexpected fractional number `{text}`")

    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=pairs, parse_constant=constant,
                          parse_float=no_float)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleError(f"{what} is not valid JSON: {exc}") from None


def _manifest(data: bytes, max_files: int) -> dict:
    doc = _strict_json(data, MANIFEST_NAME)
    if not isinstance(doc, dict):
        raise BundleError(f"{MANIFEST_NAME} is not a JSON object")
    if doc.get("format") != FORMAT:
        raise BundleError(f"unsupported bundle format `{doc.get('format')}` (this server reads `{FORMAT}`)")
    if set(doc) != _MANIFEST_KEYS:
        extra, absent = sorted(set(doc) - _MANIFEST_KEYS), sorted(_MANIFEST_KEYS - set(doc))
        raise BundleError(f"{MANIFEST_NAME} " + (f"has unknown field `{extra[0]}`" if extra else
                                                 f"lacks the field `{absent[0]}`"))
    if not isinstance(doc["bundle_hash"], str) or not _BUNDLE_HASH.fullmatch(doc["bundle_hash"]):
        raise BundleError(f"{MANIFEST_NAME}: `bundle_hash` is not `sha256:` and 64 hex digits")
    version = doc["version"]
    if not isinstance(version, str) or not version or len(version) > MAX_LABEL_LENGTH:
        raise BundleError(f"{MANIFEST_NAME}: `version` must be a string of 1 to {MAX_LABEL_LENGTH} characters")
    for key in ("created_at", "author", "source_revision"):
        if doc[key] is not None and not isinstance(doc[key], str):
            raise BundleError(f"{MANIFEST_NAME}: `{key}` must be a string or null")
    files = doc["files"]
    if not isinstance(files, list):
        raise BundleError(f"{MANIFEST_NAME}: `files` must be a list")
    if len(files) > max_files:
        raise BundleError(f"the manifest lists more than {max_files} files")
    names = set()
    for entry in files:
        if not isinstance(entry, dict) or set(entry) != _FILE_KEYS:
            raise BundleError(f"{MANIFEST_NAME}: each file is {{\"name\", \"sha256\", \"bytes\"}}")
        name, digest, size = entry["name"], entry["sha256"], entry["bytes"]
        problem = name_problem(name)
        if problem is not None:
            raise BundleError(f"{MANIFEST_NAME}: file `{name}`: {problem}")
        if name in names:
            raise BundleError(f"{MANIFEST_NAME}: file `{name}` is listed twice")
        names.add(name)
        if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest):
            raise BundleError(f"{MANIFEST_NAME}: file `{name}`: `sha256` is not 64 lower-case hex digits")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise BundleError(f"{MANIFEST_NAME}: file `{name}`: `bytes` is not a size")
    return doc


def _signature(data: bytes) -> dict:
    doc = _strict_json(data, SIGNATURE_NAME)
    if not isinstance(doc, dict) or set(doc) != _SIGNATURE_KEYS:
        raise BundleError(f'{SIGNATURE_NAME} must be {{"alg", "kid", "sig"}}')
    if doc["alg"] != SIGNATURE_ALG:
        raise BundleError(f"{SIGNATURE_NAME}: unsupported alg `{doc['alg']}` (only {SIGNATURE_ALG})")
    if not isinstance(doc["kid"], str) or not doc["kid"] or not isinstance(doc["sig"], str):
        raise BundleError(f"{SIGNATURE_NAME}: `kid` and `sig` must be strings")
    return doc


# ---------------------------------------------------------------- signatures

def signature_status(bundle: Bundle, find_key: Callable[[str], PublicKey | None]) -> Status:
    """"unsigned", "valid", "invalid" (a bad signature, or a manifest that does not match the
    files) or "unknown_key" (`find_key(kid)` returned None)."""
    sig = bundle.signature
    if sig is None:
        return "unsigned"
    key = find_key(sig.get("kid", ""))
    if key is None:
        return "unknown_key"
    if sig.get("alg") != SIGNATURE_ALG or not manifest_matches(bundle):
        return "invalid"
    try:
        raw = b64url_decode(sig.get("sig", ""))
        message = canonical_bytes(bundle.manifest)
    except (ValueError, TypeError):
        return "invalid"
    return "valid" if key.verify(message, raw) else "invalid"


def manifest_matches(bundle: Bundle) -> bool:
    """Whether the manifest's hash and file list describe exactly the bundle's files."""
    listed = bundle.manifest.get("files")
    if not isinstance(listed, list) or bundle.manifest.get("bundle_hash") != bundle.bundle_hash:
        return False
    try:
        return sorted(listed, key=lambda f: f["name"]) == file_entries(bundle.files)
    except (KeyError, TypeError):
        return False


# ---------------------------------------------------------------- git

def source_revision(path: str | os.PathLike) -> str | None:
    """The commit checked out where `path` lives, if it is inside a git work tree; else None."""
    out = _git(path, "rev-parse", "HEAD")
    return out if out is not None and _GIT_COMMIT.fullmatch(out) else None


def git_user_name(path: str | os.PathLike) -> str | None:
    """`git config user.name` as seen from `path`, if set."""
    return _git(path, "config", "user.name") or None


def _git(path: str | os.PathLike, *args: str) -> str | None:
    where = Path(path)
    cwd = where if where.is_dir() else where.parent
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_SECONDS,
                              check=False)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
