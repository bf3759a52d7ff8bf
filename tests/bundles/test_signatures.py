"""Publisher signatures on bundles: Ed25519 over the manifest's canonical bytes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gavel.bundles import (
    BundleError,
    build_archive,
    make_bundle,
    read_archive,
    sign_manifest,
    signature_status,
    write_archive,
)
from gavel.crypto.keys import Ed25519KeyPair, b64url_encode
from gavel.ledger.canonical import canonical_bytes

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
PUBLISHER = Ed25519KeyPair.from_seed(bytes(range(32)))
STRANGER = Ed25519KeyPair.from_seed(bytes(range(1, 33)))
FILES = {"p.rules": 'package p\nrule r allow "p.r" when action.type == "x"\n'}


def trusted(kid: str):
    return {PUBLISHER.kid: PUBLISHER.public()}.get(kid)


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_a_signed_archive_checks_out_with_the_publishers_key(rules_dir: Path) -> None:
    bundle = read_archive(build_archive(rules_dir, version="v", author="a", now=NOW, sign_with=PUBLISHER))
    assert bundle.signature["alg"] == "EdDSA" and bundle.signature["kid"] == PUBLISHER.kid
    assert PUBLISHER.public().verify(canonical_bytes(bundle.manifest), _sig(bundle.signature))
    assert signature_status(bundle, trusted) == "valid"


def test_unsigned_unknown_key_and_invalid() -> None:
    unsigned = make_bundle(FILES, version="v")
    assert signature_status(unsigned, trusted) == "unsigned"
    by_stranger = make_bundle(FILES, version="v", sign_with=STRANGER)
    assert signature_status(by_stranger, trusted) == "unknown_key"
    # the stranger signs but claims the publisher's kid
    forged = replace(by_stranger, signature={**by_stranger.signature, "kid": PUBLISHER.kid})
    assert signature_status(forged, trusted) == "invalid"
    garbled = replace(by_stranger, signature={**by_stranger.signature, "kid": PUBLISHER.kid, "sig": "!!"})
    assert signature_status(garbled, trusted) == "invalid"


def test_changing_the_manifest_after_signing_invalidates_it() -> None:
    signed = make_bundle(FILES, version="v1", sign_with=PUBLISHER)
    relabelled = replace(signed, manifest={**signed.manifest, "version": "v2"})
    # still a well-formed archive: the files match the manifest, only the signature is wrong
    reread = read_archive(write_archive(relabelled))
    assert reread.version == "v2" and signature_status(reread, trusted) == "invalid"


def test_a_manifest_that_does_not_describe_the_files_is_invalid_even_if_signed() -> None:
    signed = make_bundle(FILES, version="v1", sign_with=PUBLISHER)
    swapped = replace(signed, files={"p.rules": FILES["p.rules"] + "# changed\n"})
    assert signature_status(swapped, trusted) == "invalid"


def test_the_signature_document_is_strict() -> None:
    signed = make_bundle(FILES, version="v1", sign_with=PUBLISHER)
    for doc, message in (({**signed.signature, "alg": "none"}, "unsupported alg `none`"),
                         ({"kid": PUBLISHER.kid}, 'signature.json must be {"alg", "kid", "sig"}'),
                         ({**signed.signature, "kid": 5}, "`kid` and `sig` must be strings")):
        with pytest.raises(BundleError, match=message):
            read_archive(write_archive(replace(signed, signature=doc)))


def test_signing_is_deterministic_and_covers_the_manifest() -> None:
    manifest = make_bundle(FILES, version="v").manifest
    assert sign_manifest(manifest, PUBLISHER) == sign_manifest(dict(reversed(manifest.items())), PUBLISHER)
    assert sign_manifest(manifest, PUBLISHER) != sign_manifest({**manifest, "author": "x"}, PUBLISHER)


def _sig(doc: dict) -> bytes:
    from gavel.crypto.keys import b64url_decode

    assert b64url_encode(b64url_decode(doc["sig"])) == doc["sig"]
    return b64url_decode(doc["sig"])
