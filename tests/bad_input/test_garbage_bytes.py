"""Garbage on the wire does not take the server down.

Raw TCP connections to the gRPC port and to the REST/HTTP port send random bytes, truncated and
corrupted HTTP/2 prefaces and frames, malformed HTTP/1.1 (bad request lines, huge and numerous
headers, lying Content-Lengths, broken chunked bodies), TLS hellos to plaintext ports, and
connections that are reset or left hanging — many times, and many at once. Afterwards, and
while dozens of such connections are still open, a normal Decide and a normal REST call work,
health is SERVING, and the process is alive.

This module has a server of its own (`victim`), so that whatever garbage does to it cannot
disturb the other bad-input tests.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import struct
from collections.abc import Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gavel.v1 import common_pb2, decision_pb2, decision_pb2_grpc
from tests.bad_input.served import ServedGavel

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
TLS_HELLO = bytes.fromhex("160301002e0100002a0303") + bytes(32) + bytes.fromhex("000002002f0100")


@pytest.fixture(scope="module")
def victim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedGavel]:
    server = ServedGavel(tmp_path_factory.mktemp("victim"))
    try:
        server.start()
        yield server
    finally:
        code = server.stop()
    assert code == 0, f"the server did not stop cleanly ({code}):\n{server.log_text()[-4000:]}"


def frame(kind: int, flags: int, stream: int, payload: bytes, length: int | None = None) -> bytes:
    n = len(payload) if length is None else length
    return struct.pack(">I", n)[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def send(port: int, data: bytes, *, reset: bool = False, read: bool = True) -> None:
    """Connect, send, maybe read a little, then close (or reset) — tolerating any refusal."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(data)
        if read:
            s.settimeout(0.3)
            with contextlib.suppress(OSError):
                s.recv(65536)


GRPC_CASES = [
    b"", PREFACE[:5], PREFACE[:-1], PREFACE + b"\x00", b"PRI * HTTP/1.1\r\n\r\n", TLS_HELLO,
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01" + b"\xff" * 100,
    PREFACE + frame(4, 0, 0, b""),  # SETTINGS, then nothing
    PREFACE + frame(4, 0, 0, b"\x00\x04\xff\xff\xff\xff"),  # an initial window size over 2**31 - 1
    PREFACE + frame(4, 0, 0, b"\x00\x05\x00\x00\x00\x01"),  # a max frame size below the minimum
    PREFACE + frame(4, 0, 0, b"") + frame(1, 4, 1, b"\xff" * 64),  # HEADERS with garbage HPACK
    PREFACE + frame(4, 0, 0, b"") + frame(0, 1, 1, b"data for no stream"),
    PREFACE + frame(4, 0, 0, b"") + frame(1, 4, 2, b"\x82\x86\x84"),  # an even (server) stream id
    PREFACE + frame(4, 0, 0, b"") + frame(9, 0, 1, b"x" * 10),  # CONTINUATION without HEADERS
    PREFACE + frame(0, 0, 1, b"", length=0xFFFFFF),  # a 16 MiB frame announced, never sent
    PREFACE + frame(8, 0, 0, b"\x7f\xff\xff\xff") * 20,  # WINDOW_UPDATE floods
    PREFACE + frame(6, 0, 0, b"12345678") * 200,  # PING floods
    PREFACE + frame(4, 0, 0, b"") + frame(3, 0, 1, b"\x00\x00\x00\x08"),  # RST_STREAM of an idle stream
    PREFACE + frame(7, 0, 0, b"\x00" * 8),  # GOAWAY straight away
]

HTTP_CASES = [
    b"", b"\r\n\r\n", b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"G\x00T / HTTP/1.1\r\n\r\n",
    b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 100_000 + b"\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(500)) + b"\r\n",
    b"POST /v1/webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n{",
    b"POST /v1/webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /v1/webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef",
    b"POST /v1/webhooks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n",
    b"POST /v1/webhooks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
    b"POST /v1/webhooks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", b"GET /healthz HTTP/1.1\r\n: empty\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: \xff\xfe\r\n\r\n", b"GET /%ZZ%00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 50,  # pipelined
    PREFACE + frame(4, 0, 0, b""), TLS_HELLO,
]


def assert_still_serving(server: ServedGavel) -> None:
    """A normal Decide, a normal REST call, health SERVING — on fresh connections."""
    server.assert_serving()
    with grpc.insecure_channel(server.grpc_addr) as ch:
        d = decision_pb2_grpc.DecisionServiceStub(ch).Decide(decision_pb2.DecideRequest(
            action=common_pb2.Action(type="payment", amount="10", currency="USD"),
            agent=decision_pb2.AgentRef(id="bot-after-garbage")), metadata=server.md(), timeout=30)
    assert d.outcome == common_pb2.OUTCOME_ALLOW, d
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        health = json.loads(resp.read())
        assert resp.status == 200 and health["status"] == "ok", health
        conn.request("GET", "/v1/webhooks", headers=server.http_headers("hooks"))
        resp = conn.getresponse()
        assert resp.status == 200 and "webhooks" in json.loads(resp.read())
    finally:
        conn.close()


def assert_no_traceback(server: ServedGavel) -> None:
    """Garbage is the client's mistake: no traceback, nothing at ERROR (anyone could fill the log)."""
    log = server.log_text()
    for marker in ("Traceback", "Unexpected [", " ERROR "):
        assert marker not in log, f"`{marker}` in the log:\n{log[-6000:]}"


def grpc_port(server: ServedGavel) -> int:
    return int(server.grpc_addr.rpartition(":")[2])


def test_crafted_garbage_on_both_ports(victim) -> None:
    for _ in range(3):
        for case in GRPC_CASES:
            send(grpc_port(victim), case)
            send(grpc_port(victim), case, reset=True, read=False)
        for case in HTTP_CASES:
            send(victim.http_port, case)
            send(victim.http_port, case, reset=True, read=False)
    assert_still_serving(victim)
    assert_no_traceback(victim)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=4096), st.binary(max_size=64).map(lambda b: PREFACE + b),
                      st.binary(max_size=256).map(lambda b: PREFACE + frame(4, 0, 0, b"") + b),
                      st.binary(max_size=256).map(lambda b: b"POST /v1/webhooks HTTP/1.1\r\n" + b)),
       reset=st.booleans())
def test_random_bytes_on_both_ports(victim, data: bytes, reset: bool) -> None:
    send(grpc_port(victim), data, reset=reset, read=not reset)
    send(victim.http_port, data, reset=reset, read=not reset)
    victim.assert_running()


def test_service_continues_while_garbage_connections_hang_open(victim) -> None:
    held: list[socket.socket] = []
    try:
        for i in range(48):
            for port in (grpc_port(victim), victim.http_port):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall([PREFACE[:10], b"GET / HTTP/1.1\r\nX-Slow: ", TLS_HELLO[:5], bytes(range(i % 256))][i % 4])
                held.append(s)
        assert_still_serving(victim)
    finally:
        for s in held:
            s.close()
    assert_still_serving(victim)
    assert_no_traceback(victim)


def test_an_unparseable_http_request_is_a_400_and_one_quiet_log_line(victim) -> None:
    start = victim.log_path.stat().st_size
    with socket.create_connection(("127.0.0.1", victim.http_port), timeout=5) as s:
        s.sendall(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = s.recv(65536)
    assert reply.split(b" ", 2)[1] == b"400", reply[:200]
    victim.assert_serving()
    with victim.log_path.open("rb") as f:
        f.seek(start)
        new = f.read().decode("utf-8", "replace")
    assert "Traceback" not in new and " ERROR " not in new, new
