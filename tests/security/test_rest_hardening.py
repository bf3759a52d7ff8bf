"""Hostile input at the edges, on a real port: a request aiohttp cannot parse costs one log line,
never a traceback (garbage from anyone must not flood the log), and the shim goes on serving; an
update cannot store what creation refuses; NUL never reaches a store; a WatchApprovals cursor is
checked before it is used."""

from __future__ import annotations

import asyncio
import logging
import os

import aiohttp
import grpc
import pytest

from gavel.v1 import approval_pb2, approval_pb2_grpc
from tests.e2e.helpers import expect_error
from tests.security.support import add_key, bearer, start_rest

GARBAGE = [
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # request line over 8 KiB
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
    b"POST /v1/webhooks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32),  # a TLS hello
    os.urandom(512),
]


async def send_raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 5)
    except (ConnectionError, TimeoutError):
        return b""
    finally:
        writer.close()


async def test_unparseable_requests_leave_no_traceback_and_the_shim_serves_on(harness, caplog) -> None:
    h = harness
    rest = await start_rest(h)
    port = int(rest.base.rsplit(":", 1)[1])
    try:
        with caplog.at_level(logging.DEBUG):
            for data in GARBAGE:
                reply = await send_raw(port, data)
                assert reply == b"" or reply.split(b" ", 2)[1].startswith(b"4"), reply[:100]
            async with aiohttp.ClientSession() as http, http.get(
                    f"{rest.base}/v1/webhooks", headers=bearer(h.keys["admin_test"])) as r:
                assert r.status == 200
    finally:
        await rest.server.stop()
    noisy = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert noisy == [], [(r.name, r.levelname, r.getMessage()) for r in noisy]
    assert any("malformed HTTP request" in r.getMessage() for r in caplog.records)


async def test_a_webhook_update_cannot_store_what_creation_refuses(harness) -> None:
    h = harness
    rest = await start_rest(h)
    key = h.keys["admin_test"]
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{rest.base}/v1/webhooks", headers=bearer(key, "c"),
                                 json={"url": "https://93.184.216.34/h", "events": ["approval.requested"]}) as r:
                made = await r.json()
            for body in ({"description": "d" * 257}, {"url": "http://127.0.0.1/h"}, {"events": ["nope"]},
                         {"url": "http://0x7f.1/h"}):
                async with http.put(f"{rest.base}/v1/webhooks/{made['id']}", headers=bearer(key), json=body) as r:
                    assert r.status == 400, (body, await r.text())
            async with http.get(f"{rest.base}/v1/webhooks/{made['id']}", headers=bearer(key)) as r:
                now = await r.json()
    finally:
        await rest.server.stop()
    assert (now["url"], now["events"], now["description"]) == ("https://93.184.216.34/h", ["approval.requested"], "")


@pytest.mark.parametrize("description", ["d" * 256])
async def test_a_webhook_update_keeps_what_creation_allows(harness, description) -> None:
    h = harness
    rest = await start_rest(h)
    key = h.keys["admin_test"]
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{rest.base}/v1/webhooks", headers=bearer(key, "c"),
                                 json={"url": "https://93.184.216.34/h", "events": ["approval.requested"]}) as r:
                made = await r.json()
            async with http.put(f"{rest.base}/v1/webhooks/{made['id']}", headers=bearer(key),
                                json={"description": description}) as r:
                assert r.status == 200 and (await r.json())["description"] == description
    finally:
        await rest.server.stop()


async def test_nul_is_refused_in_paths_and_bodies_on_every_store(harness) -> None:
    """PostgreSQL cannot store U+0000 (a 500 there), SQLite can: the shim refuses it before either."""
    h = harness
    rest = await start_rest(h)
    key = h.keys["admin_test"]
    try:
        async with aiohttp.ClientSession() as http:
            for method, path, body in (
                    ("GET", "/v1/webhooks/%00", None), ("GET", "/v1/webhooks/wh_%00/deliveries", None),
                    ("POST", "/v1/approvals/apr_%00x/resolve", {"action": "DENY"}),
                    ("POST", "/v1/webhooks", {"url": "https://93.184.216.34/h", "events": ["approval.requested"],
                                              "description": "a\x00b"}),
                    ("POST", "/v1/webhooks", {"url": "https://93.184.216.34/h", "events": ["approval.\x00"]}),
                    ("POST", "/v1/approvals/apr_x/resolve", {"action": "MODIFY",
                                                             "modified_action": {"args": {"k\x00": "v"}}})):
                async with http.request(method, f"{rest.base}{path}", json=body,
                                        headers=bearer(key, "n" + path + str(body))) as r:
                    doc = await r.json()
                    assert r.status == 400 and doc["error"]["code"] == "INVALID_REQUEST", (path, body, r.status, doc)
            async with http.get(f"{rest.base}/v1/webhooks", headers=bearer(key)) as r:
                assert (await r.json())["webhooks"] == []
    finally:
        await rest.server.stop()


async def test_a_watch_cursor_is_ascii_digits_of_a_sane_length(harness) -> None:
    """A cursor is a ledger position: `²` (a Unicode digit) or 30 digits are bad input, not a 500."""
    h = harness
    add_key(h, "watcher", roles=("finance_manager",))
    stub = approval_pb2_grpc.ApprovalServiceStub(h.channel)
    for cursor in ("²", "9" * 30, "-1", "1.5", "١"):
        fields = await expect_error(stub.WatchApprovals(approval_pb2.WatchApprovalsRequest(cursor=cursor),
                                                        metadata=h.md("watcher")).read(),
                                    grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")
        assert fields == ["cursor"]
