"""Checkpoints as C2SP tlog-checkpoint bodies inside C2SP signed notes."""

import base64
import hashlib
import re

import pytest

from gavel.crypto.keys import Ed25519KeyPair
from gavel.ledger.checkpoint import (
    NoteError,
    checkpoint_body,
    note_key_hash,
    open_note,
    parse_body,
    sign_note,
    verifier_key,
)

# The reference key and note from Go's golang.org/x/mod/sumdb/note tests (published test data).
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SIGNATURE_LINE = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)

ORIGIN = "gavel.example/ledger/acme/prod"
LOG_KEY = Ed25519KeyPair.from_seed(bytes([7]) * 32)
WITNESS_KEY = Ed25519KeyPair.from_seed(bytes([8]) * 32)
ROOT = hashlib.sha256(b"some root").digest()


def go_key_pair() -> Ed25519KeyPair:
    material = base64.b64decode(GO_SIGNER_KEY.split("+", 4)[4])
    assert material[0] == 1
    return Ed25519KeyPair.from_seed(material[1:])


# --- the body --------------------------------------------------------------------------------


def test_body_matches_the_c2sp_example_exactly():
    root = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    body = checkpoint_body("example.com/behind-the-sofa", 20852163, root)
    assert body == "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    assert parse_body(body) == ("example.com/behind-the-sofa", 20852163, root, ())


def test_body_with_extensions_and_empty_tree_round_trips():
    body = checkpoint_body(ORIGIN, 0, ROOT, ["ext one", "ext-two"])
    assert body.endswith("\next one\next-two\n") and body.split("\n")[1] == "0"
    assert parse_body(body) == (ORIGIN, 0, ROOT, ("ext one", "ext-two"))


ORIGIN_LINE = "the origin must be one non-empty line"
SIZE = "the tree size must be a whole number >= 0"
EXTENSION = "an extension line must be one non-empty line"


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        (("", 1, ROOT), ORIGIN_LINE),
        (("two\nlines", 1, ROOT), ORIGIN_LINE),
        (("tab\there", 1, ROOT), "the origin holds control characters or is not valid UTF-8"),
        ((ORIGIN, -1, ROOT), SIZE),
        ((ORIGIN, True, ROOT), SIZE),
        ((ORIGIN, 1, ROOT[:31]), "the root hash must be 32 bytes"),
        ((ORIGIN, 1, ROOT, [""]), EXTENSION),
        ((ORIGIN, 1, ROOT, ["a\nb"]), EXTENSION),
    ],
)
def test_body_refuses_what_cannot_be_written(args, refusal):
    with pytest.raises(ValueError, match=f"^{refusal}$"):
        checkpoint_body(*args)


GOOD_ROOT_TEXT = base64.b64encode(ROOT).decode()
URLSAFE_ROOT_TEXT = base64.urlsafe_b64encode(bytes([0xFB]) * 32).decode()
NOT_DECIMAL = "is not a decimal number without leading zeros"
NOT_BASE64 = "is not standard base64"
EMPTY_LINE = "a checkpoint body has no empty lines"


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        (f"{ORIGIN}\n5\n{GOOD_ROOT_TEXT}", "a checkpoint body ends with a newline"),
        (f"{ORIGIN}\n5\n", "a checkpoint body has at least 3 lines: origin, tree size, root hash"),
        (f"{ORIGIN}\n05\n{GOOD_ROOT_TEXT}\n", NOT_DECIMAL),  # leading zero
        (f"{ORIGIN}\n+5\n{GOOD_ROOT_TEXT}\n", NOT_DECIMAL),
        (f"{ORIGIN}\n-5\n{GOOD_ROOT_TEXT}\n", NOT_DECIMAL),
        (f"{ORIGIN}\n 5\n{GOOD_ROOT_TEXT}\n", NOT_DECIMAL),
        (f"{ORIGIN}\n5\n{GOOD_ROOT_TEXT.rstrip('=')}\n", NOT_BASE64),  # unpadded
        (f"{ORIGIN}\n5\n{URLSAFE_ROOT_TEXT}\n", NOT_BASE64),  # base64url alphabet
        (f"{ORIGIN}\n5\n{base64.b64encode(ROOT[:31]).decode()}\n", "the root hash is 31 bytes, not 32"),
        (f"{ORIGIN}\n5\n{GOOD_ROOT_TEXT}\n\nextension after an empty line\n", EMPTY_LINE),
        (f"\n5\n{GOOD_ROOT_TEXT}\n", EMPTY_LINE),  # empty origin
        (f"{ORIGIN}\r\n5\n{GOOD_ROOT_TEXT}\n", "the checkpoint body holds control characters or is not valid UTF-8"),
        (f"{ORIGIN}\n5\n{GOOD_ROOT_TEXT} \n", NOT_BASE64),
    ],
)
def test_parse_body_is_strict(text, refusal):
    with pytest.raises(ValueError, match=re.escape(refusal) + "$"):
        parse_body(text)


def test_parse_body_refuses_non_canonical_base64():
    # Same bytes, but the unused low bits of the last character are set.
    text = GOOD_ROOT_TEXT
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".index(text[-2])
    altered = text[:-2] + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[last ^ 1] + "="
    assert base64.b64decode(altered) == ROOT
    with pytest.raises(ValueError):
        parse_body(f"{ORIGIN}\n5\n{altered}\n")


# --- keys ------------------------------------------------------------------------------------


def test_key_hash_and_verifier_key_match_the_go_reference():
    key = go_key_pair()
    expected_public = base64.b64decode(GO_VERIFIER_KEY.split("+", 2)[2])[1:]
    assert key.public_key == expected_public
    assert note_key_hash("PeterNeumann", key.public_key).hex() == "c74f20a3"
    assert verifier_key("PeterNeumann", key.public_key) == GO_VERIFIER_KEY


def test_key_hash_is_the_spec_formula():
    expected = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + LOG_KEY.public_key).digest()[:4]
    assert note_key_hash(ORIGIN, LOG_KEY.public_key) == expected
    name, key_id, material = verifier_key(ORIGIN, LOG_KEY.public_key).split("+")
    assert (name, key_id) == (ORIGIN, expected.hex())
    assert base64.b64decode(material) == b"\x01" + LOG_KEY.public_key


@pytest.mark.parametrize("name", ["", "has space", "has+plus", "tab\tname", "nbsp\u00a0name", "new\nline", 7])
def test_invalid_key_names_are_refused(name):
    with pytest.raises(ValueError):
        note_key_hash(name, LOG_KEY.public_key)
    with pytest.raises(ValueError):
        verifier_key(name, LOG_KEY.public_key)
    with pytest.raises(ValueError):
        sign_note("text\n", name, LOG_KEY)
    with pytest.raises(ValueError):
        open_note("text\n\n— x AAAAAAA=\n", name, LOG_KEY.public_key)


def test_public_key_must_be_32_bytes():
    with pytest.raises(ValueError):
        note_key_hash(ORIGIN, b"short")


# --- signed notes ----------------------------------------------------------------------------


def test_signature_matches_the_go_reference_byte_for_byte():
    note, signature = sign_note(GO_TEXT, "PeterNeumann", go_key_pair())
    assert note == GO_TEXT + "\n" + GO_SIGNATURE_LINE
    assert len(signature) == 64 and go_key_pair().public().verify(GO_TEXT.encode(), signature)
    assert open_note(note, "PeterNeumann", go_key_pair().public_key) == GO_TEXT


def test_checkpoint_note_round_trip():
    body = checkpoint_body(ORIGIN, 42, ROOT)
    note, signature = sign_note(body, ORIGIN, LOG_KEY)
    assert note.startswith(body + "\n— " + ORIGIN + " ")
    blob = base64.b64decode(note.rsplit(" ", 1)[1])
    assert blob == note_key_hash(ORIGIN, LOG_KEY.public_key) + signature
    opened = open_note(note, ORIGIN, LOG_KEY.public_key)
    assert opened == body and parse_body(opened) == (ORIGIN, 42, ROOT, ())


def test_wrong_key_or_name_is_refused():
    note, _ = sign_note(checkpoint_body(ORIGIN, 42, ROOT), ORIGIN, LOG_KEY)
    with pytest.raises(NoteError, match="no signature"):
        open_note(note, ORIGIN, WITNESS_KEY.public_key)
    with pytest.raises(NoteError, match="no signature"):
        open_note(note, "gavel.example/other", LOG_KEY.public_key)


def test_tampered_body_is_refused():
    note, _ = sign_note(checkpoint_body(ORIGIN, 42, ROOT), ORIGIN, LOG_KEY)
    with pytest.raises(NoteError, match="does not verify"):
        open_note(note.replace("\n42\n", "\n43\n"), ORIGIN, LOG_KEY.public_key)


def test_tampered_signature_is_refused():
    note, _ = sign_note(checkpoint_body(ORIGIN, 42, ROOT), ORIGIN, LOG_KEY)
    head, blob = note.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(blob))
    raw[10] ^= 1
    with pytest.raises(NoteError, match="does not verify"):
        open_note(f"{head} {base64.b64encode(bytes(raw)).decode()}\n", ORIGIN, LOG_KEY.public_key)


def test_several_signature_lines():
    body = checkpoint_body(ORIGIN, 42, ROOT)
    note, _ = sign_note(body, ORIGIN, LOG_KEY)
    witness_note, _ = sign_note(body, "witness.example/w1", WITNESS_KEY)
    witness_line = witness_note[len(body) + 1 :]
    unknown_line = "— someone.example/else " + base64.b64encode(b"\x00\x01\x02\x03" + bytes(64)).decode() + "\n"
    # same name as the log, different key ID: an unknown key, to be ignored
    same_name_other_key = "— " + ORIGIN + " " + base64.b64encode(b"\xff\xff\xff\xff" + bytes(64)).decode() + "\n"
    cosigned = body + "\n" + unknown_line + witness_line + note[len(body) + 1 :] + same_name_other_key
    assert open_note(cosigned, ORIGIN, LOG_KEY.public_key) == body
    assert open_note(cosigned, "witness.example/w1", WITNESS_KEY.public_key) == body


def test_a_failing_signature_by_the_expected_key_refuses_the_note_even_beside_a_good_one():
    body = checkpoint_body(ORIGIN, 42, ROOT)
    note, _ = sign_note(body, ORIGIN, LOG_KEY)
    bad_line = "— " + ORIGIN + " " + base64.b64encode(note_key_hash(ORIGIN, LOG_KEY.public_key) + bytes(64)).decode()
    with pytest.raises(NoteError):
        open_note(note + bad_line + "\n", ORIGIN, LOG_KEY.public_key)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda note: note.rstrip("\n"),  # no final newline
        lambda note: note.replace("\n\n", "\n"),  # no blank line
        lambda note: note.replace("— ", "-- "),  # not an em dash
        lambda note: note.replace("— ", "—  "),  # two spaces
        lambda note: note[: note.rindex(" ")] + " not*base64\n",
        lambda note: note[: note.rindex(" ")] + " AAAA\n",  # too short to hold a key ID and signature
        lambda note: note + "\n",  # trailing empty signature line
        lambda note: note.split("\n\n")[0] + "\n\n",  # no signature lines at all
        lambda note: note.replace("\n42\n", "\n4\x002\n"),  # control character
        lambda note: note + ("— x " + base64.b64encode(bytes(68)).decode() + "\n") * 100,  # too many
    ],
)
def test_malformed_notes_are_refused(mangle):
    note, _ = sign_note(checkpoint_body(ORIGIN, 42, ROOT), ORIGIN, LOG_KEY)
    with pytest.raises(NoteError):
        open_note(mangle(note), ORIGIN, LOG_KEY.public_key)


def test_note_text_may_hold_empty_lines():
    text = "first paragraph\n\nsecond paragraph\n"
    note, _ = sign_note(text, ORIGIN, LOG_KEY)
    assert open_note(note, ORIGIN, LOG_KEY.public_key) == text


def test_sign_note_refuses_bad_text():
    for text in ("", "no final newline", "bell\x07\n"):
        with pytest.raises(ValueError):
            sign_note(text, ORIGIN, LOG_KEY)


def test_note_error_carries_its_message():
    with pytest.raises(NoteError) as caught:
        open_note(42, ORIGIN, LOG_KEY.public_key)
    assert caught.value.message == str(caught.value) == "a signed note is text"
