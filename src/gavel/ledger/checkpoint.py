"""Checkpoints (signed tree heads) in the text forms transparency-log tools read.

The body follows C2SP tlog-checkpoint: the origin line, the tree size in decimal, the base64
root hash, then optional extension lines, each ending in a newline. It is wrapped in a C2SP
signed note: the body, a blank line, and signature lines `— <key name> <base64(key ID ‖ sig)>`,
where for Ed25519 the key ID is the first 4 bytes of SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public
key) and the signature is over the body bytes. Gavel signs with the key name equal to the origin,
so Go's `sumdb/note` and the tools built on it accept Gavel's checkpoints given the verifier key
`<name>+<hex key ID>+<base64(0x01 ‖ public key)>`.

"base64" here is standard base64 with padding (RFC 4648 §4), as both specs use, not base64url.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence

from gavel.crypto.keys import PUBLIC_KEY_LENGTH, Ed25519KeyPair, PublicKey

ROOT_HASH_LENGTH = 32
ED25519_SIGNATURE_TYPE = b"\x01"
KEY_ID_LENGTH = 4
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
# signed-note asks verifiers to accept at least 16 signatures and to cap them; Go caps at 100.
MAX_SIGNATURES = 100
MAX_NOTE_LENGTH = 1 << 20

_CONTROL_EXCEPT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f]")
_TREE_SIZE = re.compile("0|[1-9][0-9]*")
_BASE64 = re.compile("[A-Za-z0-9+/]*={0,2}")


class NoteError(Exception):
    """A signed note that is malformed or carries no valid signature by the expected key."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def checkpoint_body(origin: str, tree_size: int, root_hash: bytes, extensions: Sequence[str] = ()) -> str:
    """Return the tlog-checkpoint note text for a tree head; every line ends with a newline."""
    _require_line(origin, "the origin")
    if isinstance(tree_size, bool) or not isinstance(tree_size, int) or tree_size < 0:
        raise ValueError("the tree size must be a whole number >= 0")
    if not isinstance(root_hash, bytes) or len(root_hash) != ROOT_HASH_LENGTH:
        raise ValueError(f"the root hash must be {ROOT_HASH_LENGTH} bytes")
    if isinstance(extensions, str):
        raise TypeError("extensions must be a sequence of lines, not one str")
    for line in extensions:
        _require_line(line, "an extension line")
    lines = [origin, str(tree_size), _b64(root_hash), *extensions]
    return "".join(line + "\n" for line in lines)


def parse_body(text: str) -> tuple[str, int, bytes, tuple[str, ...]]:
    """Read a checkpoint body into (origin, tree size, root hash, extension lines), strictly."""
    if not isinstance(text, str):
        raise ValueError("a checkpoint body is text")
    _require_note_text(text, "the checkpoint body", ValueError)
    if not text.endswith("\n"):
        raise ValueError("a checkpoint body ends with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise ValueError("a checkpoint body has at least 3 lines: origin, tree size, root hash")
    if any(line == "" for line in lines):
        raise ValueError("a checkpoint body has no empty lines")
    origin, size_text, root_text, *extensions = lines
    if not _TREE_SIZE.fullmatch(size_text):
        raise ValueError(f"the tree size `{size_text}` is not a decimal number without leading zeros")
    try:
        root_hash = _b64decode(root_text)
    except ValueError:
        raise ValueError(f"the root hash `{root_text}` is not standard base64") from None
    if len(root_hash) != ROOT_HASH_LENGTH:
        raise ValueError(f"the root hash is {len(root_hash)} bytes, not {ROOT_HASH_LENGTH}")
    return origin, int(size_text), root_hash, tuple(extensions)


def note_key_hash(name: str, public_key: bytes) -> bytes:
    """Return the signed-note key ID of an Ed25519 key: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)[:4]."""
    _require_key_name(name)
    _require_public_key(public_key)
    material = name.encode("utf-8") + b"\n" + ED25519_SIGNATURE_TYPE + public_key
    return hashlib.sha256(material).digest()[:KEY_ID_LENGTH]


def verifier_key(name: str, public_key: bytes) -> str:
    """Return the note verifier key `<name>+<hex key ID>+<base64(0x01 ‖ public key)>`."""
    key_id = note_key_hash(name, public_key)
    return f"{name}+{key_id.hex()}+{_b64(ED25519_SIGNATURE_TYPE + public_key)}"


def sign_note(body: str, name: str, key: Ed25519KeyPair) -> tuple[str, bytes]:
    """Sign `body` as a note by `key` under `name`: return (the signed note, the raw signature)."""
    _require_key_name(name)
    if not isinstance(body, str) or body == "" or not body.endswith("\n"):
        raise ValueError("a note's text is non-empty and ends with a newline")
    _require_note_text(body, "the note text", ValueError)
    signature = key.sign(body.encode("utf-8"))
    line = f"{SIGNATURE_PREFIX}{name} {_b64(note_key_hash(name, key.public_key) + signature)}\n"
    return body + "\n" + line, signature


def open_note(note: str, name: str, public_key: bytes) -> str:
    """Return the text of `note` if it carries a valid signature by `public_key` under `name`.

    Signatures by other keys (another name or another key ID) are ignored, as the spec asks; if
    a signature by this key is present but does not verify, the whole note is refused.
    """
    _require_key_name(name)
    _require_public_key(public_key)
    text, signatures = _split_note(note)
    wanted_id = note_key_hash(name, public_key)
    verifier = PublicKey(public_key)
    found = False
    for signer, blob in signatures:
        if signer != name or blob[:KEY_ID_LENGTH] != wanted_id:
            continue
        found = True
        if not verifier.verify(text.encode("utf-8"), blob[KEY_ID_LENGTH:]):
            raise NoteError(f"the signature by `{name}` does not verify: the note was altered or signed by another key")
    if not found:
        raise NoteError(f"the note has no signature by `{name}` with key ID {wanted_id.hex()}")
    return text


def _split_note(note: object) -> tuple[str, list[tuple[str, bytes]]]:
    if not isinstance(note, str):
        raise NoteError("a signed note is text")
    if len(note) > MAX_NOTE_LENGTH:
        raise NoteError("the note is too long")
    _require_note_text(note, "the note", NoteError)
    if not note.endswith("\n"):
        raise NoteError("a signed note ends with a newline")
    # The text runs up to the last blank line; only signature lines may follow it.
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("the note has no blank line before its signatures")
    text, signature_block = note[: split + 1], note[split + 2 :]
    if signature_block == "":
        raise NoteError("the note has no signature lines")
    lines = signature_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"the note has more than {MAX_SIGNATURES} signatures")
    return text, [_signature_line(number, line) for number, line in enumerate(lines, start=1)]


def _signature_line(number: int, line: str) -> tuple[str, bytes]:
    malformed = NoteError(f"signature line {number} is not `— <key name> <base64 signature>`")
    if not line.startswith(SIGNATURE_PREFIX):
        raise malformed
    parts = line[len(SIGNATURE_PREFIX) :].split(" ")
    if len(parts) != 2 or not _is_key_name(parts[0]):
        raise malformed
    try:
        blob = _b64decode(parts[1])
    except ValueError:
        raise malformed from None
    if len(blob) <= KEY_ID_LENGTH:
        raise malformed
    return parts[0], blob


def _require_key_name(name: object) -> None:
    if not isinstance(name, str) or not _is_key_name(name):
        raise ValueError(f"`{name}` is not a valid note key name (non-empty, no spaces, no `+`)")


def _is_key_name(name: str) -> bool:
    if name == "" or "+" in name or any(ch.isspace() for ch in name):
        return False
    return _CONTROL_EXCEPT_NEWLINE.search(name) is None and _is_utf8(name)


def _require_public_key(public_key: object) -> None:
    if not isinstance(public_key, bytes) or len(public_key) != PUBLIC_KEY_LENGTH:
        raise ValueError(f"an Ed25519 public key is {PUBLIC_KEY_LENGTH} bytes")


def _require_line(line: object, what: str) -> None:
    if not isinstance(line, str) or line == "" or "\n" in line:
        raise ValueError(f"{what} must be one non-empty line")
    _require_note_text(line, what, ValueError)


def _require_note_text(text: str, what: str, error: type[Exception]) -> None:
    if _CONTROL_EXCEPT_NEWLINE.search(text) or not _is_utf8(text):
        raise error(f"{what} holds control characters or is not valid UTF-8")


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str) -> bytes:
    # Strict: the standard alphabet with padding, and only the one canonical text per value.
    if not _BASE64.fullmatch(text) or len(text) % 4:
        raise ValueError("not standard base64")
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("not standard base64") from None
    if _b64(data) != text:
        raise ValueError("not canonical base64")
    return data
