"""Generated webhook subscriptions through the REST shim of a real server: create, read, update
and delete with odd URLs, event lists, descriptions, types, ids and raw bodies.

Accepted answers: 201/200/204 when the input is acceptable; 400 (INVALID_REQUEST,
IDEMPOTENCY_KEY_MISSING) for bad input, NUL in a path or body included; 404 for an id that does
not exist. Never a 500, never a non-JSON error, never a traceback in the server log.

A body the documented rules accept must be accepted: `url` an http(s) URL with a host and no
user info, at most 2,048 characters (the server runs with --webhook-allow-private, so loopback targets are fine and no
DNS is consulted), `events` a non-empty list of known event names, `description` at most 256
characters. This runs in tenant `hooks`, where no decision ever happens, so nothing is ever
delivered to the generated URLs; every example deletes what it created.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
import uuid

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.bad_input.strategies import NON_NUMERIC_SCALARS, json_values, text

EVENTS = ["authorization.decided", "authorization.finalized", "approval.requested", "approval.recorded",
          "approval.resolved", "execution.confirmed", "execution.failed", "reconciliation.completed",
          "agent.status_changed"]
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, nothing is ever sent there anyway
JSON_ANY = json_values(NON_NUMERIC_SCALARS | st.integers(-5, 5), max_leaves=5)

GOOD_URLS = st.one_of(  # at most 2,048 characters
    st.builds(lambda path: f"{CLOSED}/{urllib.parse.quote(path)}", text(16, nul=False)).filter(lambda u: len(u) < 2049),
    st.sampled_from([f"{CLOSED}/hook", "https://127.0.0.1:9/h?x=1#f", "http://[::1]:9/", "http://localhost:9/"]))
ODD_URLS = st.one_of(text(24), st.sampled_from([
    "", "ftp://127.0.0.1/x", "http://", "http:///x", "http://user:pw@127.0.0.1:9/", "http://[::1", "//127.0.0.1",
    "http://127.0.0.1:99999/", "http://127.0.0.1:-1/", "javascript:alert(1)", "file:///etc/passwd",
    "http://%zz/", "http://a\u0000b/", "http://xn--/", f"{CLOSED}/" + "a" * 2100, "HTTP://127.0.0.1:9/",
    "http://0x7f.1:9/", "http://017700000001:9/", "http://[fe80::1%25eth0]:9/"]))
GOOD_EVENTS = st.lists(st.sampled_from(EVENTS), min_size=1, max_size=4)
ODD_EVENTS = st.one_of(st.lists(st.one_of(text(12), st.sampled_from(EVENTS)), max_size=4), JSON_ANY)
GOOD_DESCRIPTIONS = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)


@st.composite
def bodies(draw, create: bool) -> tuple[bytes, bool]:
    """(body, whether the documented rules accept it)."""
    kind = draw(st.sampled_from(["fields"] * 6 + ["json", "bytes"]))
    if kind == "bytes":
        raw = draw(st.one_of(st.binary(max_size=40), st.sampled_from([b"", b"[]", b"null", b"{", b"\xff\xfe"])))
        return raw, raw == b"" and not create  # an empty PUT body is `{}`: no change
    if kind == "json":
        return json.dumps(draw(JSON_ANY)).encode(), False
    body, ok = {}, True
    for name, good, odd in (("url", GOOD_URLS, ODD_URLS), ("events", GOOD_EVENTS, ODD_EVENTS),
                            ("description", GOOD_DESCRIPTIONS, st.one_of(text(), JSON_ANY))):
        present = draw(st.integers(0, 4)) > 0 if (create and name != "description") else draw(st.booleans())
        if not present:
            ok = ok and not (create and name in ("url", "events"))
            continue
        if draw(st.integers(0, 3)) == 0:
            body[name] = draw(odd)
            ok = False  # may still be acceptable; only "ok" is asserted
        else:
            body[name] = draw(good)
    if not create and draw(st.booleans()):
        body["enabled"] = draw(st.one_of(st.booleans(), JSON_ANY))
        ok = ok and isinstance(body["enabled"], bool)
    if draw(st.integers(0, 5)) == 0:
        body[draw(text(8, nul=False))] = draw(JSON_ANY)
        ok = False
    return json.dumps(body).encode(), ok


def request(served, method: str, path: str, body: bytes | None = None, key: str | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", served.http_port, timeout=30)
    try:
        headers = {**served.http_headers("hooks", key), "Content-Type": "application/json"}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    if resp.status == 204:
        return 204, {}
    try:
        doc = json.loads(raw)
    except ValueError:
        raise AssertionError(f"{method} {path}: {resp.status} with a body that is not JSON: {raw[:200]!r}") from None
    if resp.status >= 400:
        error = doc.get("error") or {}
        assert error.get("code") and error.get("message"), f"{method} {path}: {resp.status} untyped: {doc}"
    return resp.status, doc


def too_long_description(body: bytes) -> bool:
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return isinstance(doc, dict) and isinstance(doc.get("description"), str) and len(doc["description"]) > 256


def cleanup(served) -> None:
    status, doc = request(served, "GET", "/v1/webhooks")
    assert status == 200, doc
    for w in doc["webhooks"]:
        assert request(served, "DELETE", f"/v1/webhooks/{w['id']}")[0] == 204


# Ids are kept under aiohttp's 8 KiB request line: a longer one is answered by aiohttp itself, in
# plain text and with a traceback in the log (test_known_bugs.py).
ODD_IDS = st.one_of(st.just("whk_" + "0" * 26),
                    text(12).map(lambda t: urllib.parse.quote(t, safe="")).filter(lambda t: len(t) < 4000),
                    st.sampled_from(["..", "%2e%2e", "%00", "whk_%00", "%ff", "a%2Fb", "x" * 300]))


@settings(max_examples=70, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(create=bodies(create=True), update=bodies(create=False), odd_id=ODD_IDS,
       key=st.sampled_from(["uuid", "uuid", "uuid", "none", "long"]))
def test_webhook_crud_answers_generated_input_with_a_typed_status(served, create, update, odd_id, key) -> None:
    body, acceptable = create
    idem = {"uuid": uuid.uuid4().hex, "none": None, "long": "k" * 256}[key]
    with served.clean_log():
        try:
            status, doc = request(served, "POST", "/v1/webhooks", body, idem)
            event(f"create {status}")
            assert status in (201, 400), (status, doc)
            assert status == 400 or not too_long_description(body), "POST stored a description over 256 characters"
            if key != "uuid":
                assert status == 400, f"POST without a usable Idempotency-Key answered {status}"
            elif acceptable:
                assert status == 201, f"a valid subscription was refused: {body!r} → {doc}"
            targets = [odd_id] + ([doc["id"]] if status == 201 else [])
            for target in targets:
                body2, acceptable2 = update
                status, doc2 = request(served, "PUT", f"/v1/webhooks/{target}", body2)
                event(f"update {status}")
                assert status in (200, 400, 404), (status, doc2)
                if target == odd_id:
                    assert status in (400, 404), f"PUT to a made-up id answered {status}: {doc2}"
                elif acceptable2:
                    assert status == 200, f"a valid update was refused: {body2!r} → {doc2}"
                elif too_long_description(body2):
                    assert status == 400, f"PUT stored a description over 256 characters: {doc2}"
                real = target != odd_id
                for method, path, expected in (
                        ("GET", f"/v1/webhooks/{target}", {200} if real else {400, 404}),
                        ("GET", f"/v1/webhooks/{target}/deliveries", {200} if real else {400, 404}),
                        ("POST", f"/v1/webhooks/{target}/deliveries/{odd_id}/redeliver", {400, 404})):
                    status, _ = request(served, method, path, b"" if method == "POST" else None, uuid.uuid4().hex)
                    assert status in expected, (method, path, status)
            status, _ = request(served, "DELETE", f"/v1/webhooks/{odd_id}")
            assert status in (400, 404), status
        finally:
            cleanup(served)


def test_descriptions_are_limited_to_256_characters_on_create_and_update(served) -> None:
    with served.clean_log():
        status, created = request(served, "POST", "/v1/webhooks", json.dumps(
            {"url": f"{CLOSED}/h", "events": EVENTS[:1], "description": "d" * 256}).encode(), uuid.uuid4().hex)
        assert status == 201, created
        try:
            status, doc = request(served, "POST", "/v1/webhooks", json.dumps(
                {"url": f"{CLOSED}/h", "events": EVENTS[:1], "description": "d" * 257}).encode(), uuid.uuid4().hex)
            assert status == 400 and "256" in doc["error"]["message"], doc
            status, doc = request(served, "PUT", f"/v1/webhooks/{created['id']}",
                                  json.dumps({"description": "d" * 5000}).encode())
            assert status == 400 and "256" in doc["error"]["message"], doc
        finally:
            cleanup(served)


def test_nul_in_a_path_or_a_body_is_400_naming_it(served) -> None:
    with served.clean_log():
        status, doc = request(served, "GET", "/v1/webhooks/whk_%00")
        assert status == 400 and doc["error"]["code"] == "INVALID_REQUEST", doc
        for body in ({"url": f"{CLOSED}/\u0000", "events": EVENTS[:1]}, {"url": f"{CLOSED}/h", "events": EVENTS[:1],
                                                                       "description": "a\x00b"},
                     {"url": f"{CLOSED}/h", "events": ["authorization.decided\x00"]}):
            status, doc = request(served, "POST", "/v1/webhooks", json.dumps(body).encode(), uuid.uuid4().hex)
            assert status == 400 and "NUL" in doc["error"]["message"], (body, doc)
        cleanup(served)
