"""Compact EdDSA JWS: signing, verifying, refusing forgeries; and args_hash."""

import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gavel.crypto.jws import (
    MAX_TOKEN_LENGTH,
    TokenInvalid,
    args_hash,
    decode_unverified_claims,
    sign_compact,
    verify_compact,
)
from gavel.crypto.keys import Ed25519KeyPair, KeySet, PublicKey, b64url_decode, b64url_encode

SIGNER = Ed25519KeyPair.from_seed(bytes(range(32)))
OTHER = Ed25519KeyPair.from_seed(bytes(range(1, 33)))
CLAIMS = {
    "iss": "https://gavel.example",
    "aud": "payments-tool",
    "sub": "agent-7",
    "jti": "tok_1",
    "iat": 1_735_732_800,
    "exp": 1_735_733_100,
    "tenant": "acme",
    "env": "test",
    "decision_id": "dec_1",
    "action_type": "payment",
    "amount": Decimal("120.50"),
    "currency": "USD",
    "args_hash": "sha256:" + "0" * 64,
}
CLAIMS_AS_READ = {**CLAIMS, "amount": "120.5"}


def by_kid(*keys: Ed25519KeyPair):
    table = {key.kid: key.public() for key in keys}
    return table.get


def encode_json(value) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode())


def forge(header, claims, signature: bytes = b"") -> str:
    return f"{encode_json(header)}.{encode_json(claims)}.{b64url_encode(signature)}"


def refused(token, keys=None, detail: str | None = None) -> TokenInvalid:
    with pytest.raises(TokenInvalid, match=detail) as caught:
        verify_compact(token, keys or by_kid(SIGNER))
    return caught.value


# --- round trip -------------------------------------------------------------------------------


def test_round_trip():
    token = sign_compact(CLAIMS, SIGNER)
    assert verify_compact(token, by_kid(SIGNER)) == CLAIMS_AS_READ


def test_header_and_payload_are_canonical():
    header_part, claims_part, signature_part = sign_compact(CLAIMS, SIGNER).split(".")
    assert b64url_decode(header_part) == (
        b'{"alg":"EdDSA","kid":"' + SIGNER.kid.encode() + b'","typ":"JWT"}'
    )
    payload = b64url_decode(claims_part)
    assert payload.startswith(b'{"action_type":"payment","amount":"120.5","args_hash":')
    assert b" " not in payload
    assert len(b64url_decode(signature_part)) == 64


def test_signing_is_deterministic_and_order_independent():
    reordered = dict(reversed(list(CLAIMS.items())))
    assert sign_compact(reordered, SIGNER) == sign_compact(CLAIMS, SIGNER)


def test_sign_refuses_floats_and_non_mappings():
    with pytest.raises(TypeError, match="binary floats"):
        sign_compact({"amount": 120.5}, SIGNER)
    with pytest.raises(TypeError, match="^claims must be a mapping$"):
        sign_compact(["not", "claims"], SIGNER)  # type: ignore[arg-type]


def test_decode_unverified_claims_reads_without_checking():
    token = sign_compact(CLAIMS, OTHER)
    assert decode_unverified_claims(token) == CLAIMS_AS_READ
    with pytest.raises(TokenInvalid, match="expected three dot-separated parts"):
        decode_unverified_claims("garbage")


# --- tampering --------------------------------------------------------------------------------


def test_tampered_payload_is_refused():
    header_part, _, signature_part = sign_compact(CLAIMS, SIGNER).split(".")
    richer = encode_json({**CLAIMS_AS_READ, "amount": "99999"})
    refused(f"{header_part}.{richer}.{signature_part}", detail="bad signature")


def test_tampered_header_is_refused():
    _, claims_part, signature_part = sign_compact(CLAIMS, SIGNER).split(".")
    header = encode_json({"alg": "EdDSA", "kid": SIGNER.kid, "typ": "at+jwt"})
    refused(f"{header}.{claims_part}.{signature_part}", detail="bad signature")


def test_tampered_signature_is_refused():
    header_part, claims_part, signature_part = sign_compact(CLAIMS, SIGNER).split(".")
    signature = bytearray(b64url_decode(signature_part))
    signature[10] ^= 0x01
    refused(f"{header_part}.{claims_part}.{b64url_encode(bytes(signature))}", detail="signature")


def test_signature_swapped_from_another_token_is_refused():
    header_part, claims_part, _ = sign_compact(CLAIMS, SIGNER).split(".")
    _, _, other_signature = sign_compact({**CLAIMS, "jti": "tok_2"}, SIGNER).split(".")
    refused(f"{header_part}.{claims_part}.{other_signature}", detail="bad signature")


@given(st.data())
def test_every_single_character_change_is_refused(data):
    token = sign_compact(CLAIMS, SIGNER)
    index = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from("ABCabc012_-.=+/ "))
    mutated = token[:index] + replacement + token[index + 1 :]
    if mutated != token:
        refused(mutated)


# --- algorithm confusion ----------------------------------------------------------------------


def test_alg_none_is_refused():
    refused(forge({"alg": "none", "kid": SIGNER.kid}, CLAIMS_AS_READ), detail="alg")
    refused(forge({"alg": "none"}, CLAIMS_AS_READ), detail="alg")


@pytest.mark.parametrize(
    "hmac_key",
    [
        SIGNER.public_key,
        b64url_encode(SIGNER.public_key).encode(),
        json.dumps(SIGNER.public_jwk()).encode(),
    ],
)
def test_hs256_token_keyed_with_the_public_key_is_refused(hmac_key):
    header = encode_json({"alg": "HS256", "kid": SIGNER.kid, "typ": "JWT"})
    payload = encode_json(CLAIMS_AS_READ)
    mac = hmac.new(hmac_key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    refused(f"{header}.{payload}.{b64url_encode(mac)}", detail="alg")


@pytest.mark.parametrize(
    "alg", ["EDDSA", "eddsa", "Ed25519", "ES256", "RS256", "", None, ["EdDSA"]]
)
def test_any_other_alg_is_refused_even_with_a_valid_ed25519_signature(alg):
    header = encode_json({"alg": alg, "kid": SIGNER.kid})
    payload = encode_json(CLAIMS_AS_READ)
    signature = SIGNER.sign(f"{header}.{payload}".encode())
    refused(f"{header}.{payload}.{b64url_encode(signature)}", detail="alg")


def test_missing_alg_is_refused():
    refused(forge({"kid": SIGNER.kid}, CLAIMS_AS_READ), detail="alg")


def test_embedded_jwk_is_not_trusted():
    # The attacker signs with their own key and offers it in the header.
    header = encode_json({"alg": "EdDSA", "kid": SIGNER.kid, "jwk": OTHER.public_jwk()})
    payload = encode_json(CLAIMS_AS_READ)
    signature = OTHER.sign(f"{header}.{payload}".encode())
    refused(f"{header}.{payload}.{b64url_encode(signature)}", detail="bad signature")


def test_crit_header_is_refused():
    header = encode_json({"alg": "EdDSA", "kid": SIGNER.kid, "crit": ["exp"], "exp": 1})
    payload = encode_json(CLAIMS_AS_READ)
    signature = SIGNER.sign(f"{header}.{payload}".encode())
    refused(f"{header}.{payload}.{b64url_encode(signature)}", detail="crit")


def test_duplicate_header_members_are_refused():
    header = b64url_encode(b'{"alg":"none","alg":"EdDSA","kid":"' + SIGNER.kid.encode() + b'"}')
    payload = encode_json(CLAIMS_AS_READ)
    signature = SIGNER.sign(f"{header}.{payload}".encode())
    refused(f"{header}.{payload}.{b64url_encode(signature)}", detail="header")


# --- keys -------------------------------------------------------------------------------------


def test_unknown_kid_is_refused():
    refused(sign_compact(CLAIMS, OTHER), keys=by_kid(SIGNER), detail="unknown kid")


@pytest.mark.parametrize("kid", [None, "", 7, ["a"]])
def test_missing_or_malformed_kid_is_refused(kid):
    header = {"alg": "EdDSA"} if kid is None else {"alg": "EdDSA", "kid": kid}
    refused(forge(header, CLAIMS_AS_READ, bytes(64)), detail="kid")


def test_wrong_key_for_kid_is_refused():
    token = sign_compact(CLAIMS, SIGNER)
    refused(token, keys=lambda kid: OTHER.public(), detail="bad signature")


def test_errors_from_the_key_lookup_are_not_masked():
    def store_down(kid: str) -> PublicKey | None:
        raise ConnectionError("store unavailable")

    with pytest.raises(ConnectionError):
        verify_compact(sign_compact(CLAIMS, SIGNER), store_down)


def test_token_signed_by_a_retired_key_verifies_until_retire_after():
    now = datetime(2025, 1, 1, tzinfo=UTC)
    old_token = sign_compact(CLAIMS, SIGNER)
    keys = KeySet(active=SIGNER).rotate(OTHER, now, keep_for=timedelta(minutes=10))
    new_token = sign_compact(CLAIMS, keys.active)

    before = now + timedelta(minutes=10)
    assert verify_compact(old_token, lambda kid: keys.find(kid, before)) == CLAIMS_AS_READ
    assert verify_compact(new_token, lambda kid: keys.find(kid, before)) == CLAIMS_AS_READ

    after = now + timedelta(minutes=10, seconds=1)
    refused(old_token, keys=lambda kid: keys.find(kid, after), detail="unknown kid")
    assert verify_compact(new_token, lambda kid: keys.find(kid, after)) == CLAIMS_AS_READ


# --- malformed tokens -------------------------------------------------------------------------


def signed(header_bytes: bytes, claims_bytes: bytes) -> str:
    signing_input = f"{b64url_encode(header_bytes)}.{b64url_encode(claims_bytes)}"
    return f"{signing_input}.{b64url_encode(SIGNER.sign(signing_input.encode()))}"


KID = SIGNER.kid.encode()


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        ("", "three"),
        ("abc", "three"),
        ("a.b", "three"),
        ("a.b.c.d", "three"),
        ("....", "three"),
        ("..", "header"),
        ("!!.e30.AA", "base64url"),
        ("eyJhbGciOiJFZERTQSJ9=.e30.AA", "base64url"),
        (b64url_encode(b"not json") + ".e30.AA", "JSON"),
        (b64url_encode(b"[1,2]") + ".e30.AA", "object"),
        (b64url_encode(b'"EdDSA"') + ".e30.AA", "object"),
        (b64url_encode(b'{"alg":"EdDSA","kid":NaN}') + ".e30.AA", "JSON"),
        (b64url_encode(b"\xff\xfe") + ".e30.AA", "JSON"),
        (b64url_encode(b"[" * 100_000) + ".e30.AA", "too long"),
        (signed(b'{"alg":"EdDSA","kid":"' + KID + b'"}', b"[1]"), "claims is not a JSON object"),
        (signed(b'{"alg":"EdDSA","kid":"' + KID + b'"}', b'"s"'), "claims is not a JSON object"),
        (signed(b'{"alg":"EdDSA","kid":"' + KID + b'"}', b"{oops"), "claims is not valid JSON"),
        (signed(b'{"alg":"EdDSA","kid":"' + KID + b'"}', b'{"a":1,"a":2}'), "claims"),
        (signed(b'{"alg":"EdDSA","kid":"' + KID + b'"}', b'{"a":Infinity}'), "claims"),
        (signed(b'{"alg":"EdDSA","kid":"' + KID + b'"}', b"[" * 5000), "claims"),
    ],
)
def test_malformed_tokens_are_refused(token, detail):
    refused(token, detail=detail)


def test_claims_with_fractions_are_read_as_decimals():
    token = signed(b'{"alg":"EdDSA","kid":"' + KID + b'"}', b'{"amount":120.5}')
    assert verify_compact(token, by_kid(SIGNER)) == {"amount": Decimal("120.5")}


@pytest.mark.parametrize("token", [None, b"a.b.c", 42, ["a", "b", "c"]])
def test_non_string_tokens_are_refused(token):
    refused(token, detail="string")


def test_oversized_token_is_refused_before_decoding():
    refused("a" * (MAX_TOKEN_LENGTH + 1), detail="too long")


b64url_text = st.text(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=120
)


@given(st.text(max_size=300))
def test_random_text_only_ever_raises_token_invalid(token):
    with pytest.raises(TokenInvalid):
        verify_compact(token, by_kid(SIGNER))


@given(st.lists(b64url_text, min_size=1, max_size=5).map(".".join))
def test_random_base64url_segments_only_ever_raise_token_invalid(token):
    with pytest.raises(TokenInvalid):
        verify_compact(token, by_kid(SIGNER))


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=5), children, max_size=3)
        ),
        max_leaves=8,
    ),
    st.binary(max_size=80),
)
def test_random_json_headers_only_ever_raise_token_invalid(header, signature):
    if isinstance(header, dict):
        header = {"kid": SIGNER.kid, **header}
    token = f"{encode_json(header)}.{encode_json(CLAIMS_AS_READ)}.{b64url_encode(signature)}"
    with pytest.raises(TokenInvalid):
        verify_compact(token, by_kid(SIGNER))


# --- args_hash --------------------------------------------------------------------------------


def expected_hash(canonical_text: str) -> str:
    return "sha256:" + hashlib.sha256(canonical_text.encode("utf-8")).hexdigest()


def test_args_hash_of_an_action():
    action = {
        "type": "payment",
        "subtype": "",
        "amount": Decimal("120.50"),
        "currency": "USD",
        "entity": None,
        "business_unit": "emea",
        "tool": "stripe",
        "resource": "",
        "args": {"invoice": "INV-1", "lines": [], "memo": "", "note": None},
    }
    assert args_hash(action) == expected_hash(
        '{"amount":"120.5","args":{"invoice":"INV-1","lines":[],"memo":"","note":null},'
        '"business_unit":"emea","currency":"USD","tool":"stripe","type":"payment"}'
    )


def test_args_hash_drops_only_empty_top_level_fields():
    assert args_hash({"type": "refund", "args": {}, "jurisdiction": [], "tool": ()}) == (
        expected_hash('{"type":"refund"}')
    )
    assert args_hash({"type": "refund", "amount": Decimal("0")}) == (
        expected_hash('{"amount":"0","type":"refund"}')
    )


@pytest.mark.parametrize("amount", [Decimal("120.50"), Decimal("1.205E+2"), "120.50", "120.5"])
def test_args_hash_amount_forms_agree(amount):
    assert args_hash({"type": "payment", "amount": amount}) == (
        expected_hash('{"amount":"120.5","type":"payment"}')
    )


def test_args_hash_int_amount_is_a_decimal_string():
    assert args_hash({"type": "payment", "amount": 120}) == (
        expected_hash('{"amount":"120","type":"payment"}')
    )


@pytest.mark.parametrize("amount", ["12O.5", " 120", "1_000", "1E2", "NaN", "Infinity", ".5"])
def test_args_hash_refuses_amounts_that_are_not_plain_decimals(amount):
    with pytest.raises(ValueError, match=f"^amount `{re.escape(amount)}` is not a plain decimal string$"):
        args_hash({"type": "payment", "amount": amount})


@pytest.mark.parametrize("amount", [120.5, True, ["120"]])
def test_args_hash_refuses_float_and_other_amounts(amount):
    with pytest.raises(TypeError, match="^amount must be a Decimal, int or decimal string, not "):
        args_hash({"type": "payment", "amount": amount})


@pytest.mark.parametrize("name", ["businessUnit", "Type", "2fa", "business-unit", "_x", "a__b"])
def test_args_hash_refuses_names_that_are_not_snake_case(name):
    with pytest.raises(ValueError, match="snake_case"):
        args_hash({"type": "payment", name: "x"})


def test_args_hash_refuses_floats_inside_args():
    with pytest.raises(TypeError, match="Decimal"):
        args_hash({"type": "payment", "args": {"quantity": 3.0}})


# --- every refusal, word for word (the detail is what the API reports after "decision token refused:")


def _exact_refusals() -> list[tuple[object, str]]:
    good = sign_compact(CLAIMS, SIGNER)
    header, claims, signature = good.split(".")
    edd = b'{"alg":"EdDSA","kid":"' + KID + b'"}'
    return [
        (None, "token is not a string"),
        ("a" * (MAX_TOKEN_LENGTH + 1), "token is too long"),
        ("a" * MAX_TOKEN_LENGTH, "not a compact JWS (expected three dot-separated parts)"),  # long, but not too long
        (f"!!.{claims}.{signature}", "header is not base64url"),
        (f"{b64url_encode(b'nope')}.{claims}.{signature}", "header is not valid JSON"),
        (f"{b64url_encode(b'[1]')}.{claims}.{signature}", "header is not a JSON object"),
        (forge({"alg": "HS256", "kid": SIGNER.kid}, CLAIMS_AS_READ), "alg must be EdDSA"),
        (forge({"alg": "EdDSA", "kid": SIGNER.kid, "crit": ["exp"]}, CLAIMS_AS_READ),
         "crit header parameters are not supported"),
        (forge({"alg": "EdDSA"}, CLAIMS_AS_READ), "missing kid"),
        (forge({"alg": "EdDSA", "kid": OTHER.kid}, CLAIMS_AS_READ), "unknown kid"),
        (f"{header}.{claims}.!!", "signature is not base64url"),
        (f"{header}.{claims}.{b64url_encode(bytes(64))}", "bad signature"),
        (_signed_raw(f"{b64url_encode(edd)}.!!"), "claims is not base64url"),
        (signed(edd, b"{oops"), "claims is not valid JSON"),
        (signed(edd, b"[1]"), "claims is not a JSON object"),
    ]


def _signed_raw(signing_input: str) -> str:
    return f"{signing_input}.{b64url_encode(SIGNER.sign(signing_input.encode()))}"


def test_each_refusal_is_reported_word_for_word() -> None:
    for token, detail in _exact_refusals():
        with pytest.raises(TokenInvalid, match=f"^{re.escape(detail)}$") as caught:
            verify_compact(token, by_kid(SIGNER))
        assert caught.value.detail == detail == str(caught.value)


def test_a_token_of_exactly_the_maximum_length_is_read_not_refused_as_too_long() -> None:
    token = sign_compact(CLAIMS, SIGNER)
    padded = token + "A" * (MAX_TOKEN_LENGTH - len(token))  # the signature part grows: read, then refused
    assert len(padded) == MAX_TOKEN_LENGTH == 16 * 1024
    with pytest.raises(TokenInvalid, match="^(signature is not base64url|bad signature)$"):
        verify_compact(padded, by_kid(SIGNER))
    with pytest.raises(TokenInvalid, match="^token is too long$"):
        verify_compact(padded + "A", by_kid(SIGNER))


def test_decode_unverified_claims_reports_the_claims_part() -> None:
    header, _, signature = sign_compact(CLAIMS, SIGNER).split(".")
    for claims_part, detail in (("!!", "claims is not base64url"), (b64url_encode(b"{x"), "claims is not valid JSON"),
                                (b64url_encode(b"[]"), "claims is not a JSON object")):
        with pytest.raises(TokenInvalid, match=f"^{re.escape(detail)}$"):
            decode_unverified_claims(f"{header}.{claims_part}.{signature}")
