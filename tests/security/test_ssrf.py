"""A tenant cannot make Gavel call internal addresses through webhooks (SSRF), over a real server.

- At subscription (POST and PUT /v1/webhooks): loopback, private, CGNAT, unique-local, link-local
  (cloud metadata), unspecified, IPv4-mapped / NAT64 / IPv4-compatible IPv6, every non-canonical
  IPv4 spelling (decimal, octal, hex, short forms, percent-escapes), and DNS names that resolve to
  any of them — through the machine's resolver (`localhost`, from /etc/hosts, works offline) and
  through the guard's injectable resolver (`Egress(resolver=…)`) for names that stand for DNS
  answers — are refused with 400 on the field `url`; with `--webhook-allow-private` the same
  canonical targets are accepted, so the flag is the only switch.
- At delivery, by the server's own worker and a real receiver on loopback: a subscription stored
  earlier (under `--webhook-allow-private`) in any spelling, and a name that looked public when it
  was subscribed and resolves to loopback when delivered (DNS rebinding), never reach the receiver.
- Redirects are never followed (301/302/303/307/308, to loopback or to 169.254.169.254), even when
  private targets are allowed; so a public receiver cannot bounce a delivery inward (the machine is
  offline: every receiver here is on loopback, which is why these run with private targets allowed).
  Proxy settings from the environment are ignored (a proxy would be the peer the guard vets).
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver

from gavel.adapters.rest.delivery import verify_signature
from gavel.adapters.rest.egress import Egress
from gavel.app.model import WebhookEndpoint
from tests.security.support import bearer, start_rest

CANONICAL_INTERNAL = [
    # loopback
    "http://127.0.0.1/hook", "http://127.255.255.254:8080/x", "http://[::1]/", "http://[0:0:0:0:0:0:0:1]/",
    "https://１２７.０.０.１/",  # full-width digits: IDNA maps them to 127.0.0.1
    "http://127.0.0.1#@93.184.216.34/",  # the host is 127.0.0.1; the rest is a fragment
    # private (RFC 1918, CGNAT, unique local)
    "http://10.0.0.1/", "http://10.255.255.255/", "http://172.16.0.1/", "http://172.31.255.255/",
    "http://192.168.0.1/", "http://192.168.255.255/", "http://100.64.0.1/", "http://[fc00::1]/",
    "http://[fd12:3456:789a::1]/",
    # link-local, cloud metadata
    "http://169.254.169.254/latest/meta-data/", "http://169.254.0.1/", "http://[fe80::1]/", "http://[fe80::1%25eth0]/",
    "http://[febf::1]/",
    # unspecified
    "http://0.0.0.0/", "http://0.0.0.0:8080/", "http://[::]/",
    # IPv4 inside IPv6
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:10.0.0.1]/", "http://[0:0:0:0:0:ffff:192.168.0.1]/", "http://[::ffff:0.0.0.0]/",
    "http://[64:ff9b::a9fe:a9fe]/", "http://[64:ff9b::7f00:1]/", "http://[::127.0.0.1]/",
]
MACHINE_NAMES = ["http://localhost/", "http://LOCALHOST:9/", "http://localhost./", "http://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/"]
DNS_ANSWERS = {
    "metadata.example.test": ["169.254.169.254"], "intranet.example.test": ["10.1.2.3"],
    "corp.example.test": ["172.20.0.5"], "home.example.test": ["192.168.1.1"], "ula.example.test": ["fd00::5"],
    "ll6.example.test": ["fe80::5"], "zero.example.test": ["0.0.0.0"], "mapped.example.test": ["::ffff:127.0.0.1"],
    "loop6.example.test": ["::1"], "cgnat.example.test": ["100.100.100.100"],
    "rebind.example.test": ["93.184.216.34", "127.0.0.1"],  # one bad answer taints the whole answer
    "public.example.test": ["93.184.216.34"],
}
RESOLVED_INTERNAL = [f"https://{name}/hook" for name in DNS_ANSWERS if name != "public.example.test"]
ALWAYS_REFUSED = [
    # IPv4 in other spellings: refused as non-canonical whatever the flag says
    "http://2130706433/", "http://017700000001/", "http://0177.0.0.1/", "http://0x7f000001/", "http://0x7f.0.0.1/",
    "http://127.1/", "http://127.0.1/", "http://127.000.000.001/", "http://0x7f.1/", "http://3232235521/",
    "http://0xa9fea9fe/", "http://0251.0376.0251.0376/", "http://127.0.0.1./", "http://%31%32%37.0.0.1/",
    "http://0/", "http://169.254.169.254.nip.io.123/",
    # not http(s), credentials, ambiguous authorities
    "file:///etc/passwd", "gopher://127.0.0.1:25/", "ftp://93.184.216.34/", "http://user:pw@93.184.216.34/",
    "http://93.184.216.34@127.0.0.1/", "http://localhost:80\\@93.184.216.34/", "http:///hook", "//127.0.0.1/",
    "http://exa mple.test/", "http://[::1/", "http://" + "a" * 2100 + ".test/",
]


class StubResolver(AbstractResolver):
    """DNS answers without the network, in aiohttp's resolver shape (the guard's injectable hook)."""

    def __init__(self, table: dict[str, list[str]]):
        self.table = table

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        if host.rstrip(".") not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [{"hostname": host, "host": a, "port": port, "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV} for a in self.table[host]]

    async def close(self) -> None:
        pass


class Receiver:
    """A real HTTP receiver on loopback that records every request; `/r301`… answer that redirect."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes, dict]] = []
        self.location = ""
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.path, await request.read(), dict(request.headers)))
        if request.path.startswith("/r3"):
            return web.Response(status=int(request.path[2:5]), headers={"Location": self.location})
        return web.Response(status=204)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = self.runner.addresses[0][1]
        return self

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
async def receivers():
    made: list[Receiver] = []

    async def make() -> Receiver:
        made.append(await Receiver().start())
        return made[-1]

    yield make
    for r in made:
        await r.runner.cleanup()


async def post_hook(http, base, key, url, idem):
    async with http.post(f"{base}/v1/webhooks", headers=bearer(key, idem),
                         json={"url": url, "events": ["approval.requested"]}) as r:
        return r.status, await r.json()


async def deliveries_of(http, base, key, webhook_id, count: int = 1, timeout: float = 15.0) -> list[dict]:
    """The webhook's deliveries once `count` of them are no longer pending."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with http.get(f"{base}/v1/webhooks/{webhook_id}/deliveries", headers=bearer(key)) as r:
            rows = (await r.json())["deliveries"]
        if len([d for d in rows if d["status"] != "pending"]) >= count:
            return rows
        assert asyncio.get_running_loop().time() < deadline, rows
        await asyncio.sleep(0.05)


# -- at subscription ----------------------------------------------------------------------------------------


async def test_internal_targets_are_refused_when_subscribing(harness) -> None:
    h = harness
    key = h.keys["admin_test"]
    machine = await start_rest(h)  # the server's guard: the machine's resolver
    stubbed = await start_rest(h, Egress(allow_private=False, resolver=StubResolver(DNS_ANSWERS)))
    problems = []
    try:
        async with aiohttp.ClientSession() as http:
            status, good = await post_hook(http, stubbed.base, key, "https://public.example.test/hook", "good")
            assert status == 201, good
            cases = [(machine, u) for u in CANONICAL_INTERNAL + MACHINE_NAMES + ALWAYS_REFUSED]
            cases += [(stubbed, u) for u in RESOLVED_INTERNAL]
            for n, (rest, url) in enumerate(cases):
                status, body = await post_hook(http, rest.base, key, url, f"k{n}")
                if status != 400 or body["error"]["code"] != "INVALID_REQUEST" or \
                        body["error"].get("fields", [{}])[0].get("field") != "url":
                    problems.append(f"POST {url}: {status} {body}")
                async with http.put(f"{rest.base}/v1/webhooks/{good['id']}", headers=bearer(key),
                                    json={"url": url}) as r:
                    if r.status != 400:
                        problems.append(f"PUT {url}: {r.status} {await r.text()}")
            async with http.get(f"{machine.base}/v1/webhooks", headers=bearer(key)) as r:
                listed = (await r.json())["webhooks"]
    finally:
        await machine.server.stop()
        await stubbed.server.stop()
    assert not problems, "\n".join(problems)
    assert [(w["id"], w["url"]) for w in listed] == [(good["id"], "https://public.example.test/hook")]


@pytest.mark.parametrize("settings_overrides", [{"webhook_allow_private": True}])
async def test_with_allow_private_the_same_targets_are_accepted_and_bad_spellings_are_not(harness) -> None:
    h = harness
    key = h.keys["admin_test"]
    rest = await start_rest(h, Egress(allow_private=True, resolver=StubResolver(DNS_ANSWERS)))
    problems = []
    try:
        async with aiohttp.ClientSession() as http:
            for n, url in enumerate(CANONICAL_INTERNAL + MACHINE_NAMES + RESOLVED_INTERNAL + ALWAYS_REFUSED):
                status, body = await post_hook(http, rest.base, key, url, f"k{n}")
                expected = 400 if url in ALWAYS_REFUSED else 201
                if status != expected:
                    problems.append(f"{url}: {status} {body}, expected {expected}")
                if status == 201:  # at most 50 per environment: make room
                    async with http.delete(f"{rest.base}/v1/webhooks/{body['id']}", headers=bearer(key)) as r:
                        assert r.status == 204
    finally:
        await rest.server.stop()
    assert not problems, "\n".join(problems)


# -- at delivery ---------------------------------------------------------------------------------------------


async def test_a_stored_internal_target_is_refused_at_delivery(harness, receivers) -> None:
    """Subscriptions written while private targets were allowed, delivered by a server that does not
    allow them: in every spelling of the receiver's own loopback address, nothing reaches it."""
    h = harness
    receiver = await receivers()
    hosts = ["127.0.0.1", "localhost", "LOCALHOST", "[::ffff:127.0.0.1]", "[::1]", "0x7f000001", "2130706433",
             "127.1", "%31%32%37.0.0.1", "0.0.0.0"]
    now = datetime.now(UTC)
    endpoints = [WebhookEndpoint(f"wh_ssrf{uuid.uuid4().hex[:12]}", "acme", "test", receiver.url(host=host),
                                 ("approval.requested",), True, host, "whsec_" + "s" * 43, now, now)
                 for host in hosts]

    def add(uow):
        for endpoint in endpoints:
            uow.webhooks.add(endpoint)

    await h.runtime.store.write(add)
    rest = await start_rest(h)
    key = h.keys["admin_test"]
    try:
        async with aiohttp.ClientSession() as http:
            for n, endpoint in enumerate(endpoints):
                async with http.post(f"{rest.base}/v1/webhooks/{endpoint.endpoint_id}/test",
                                     headers=bearer(key, f"t{n}")) as r:
                    assert r.status == 202
            results = {}
            for endpoint in endpoints:
                (row,) = await deliveries_of(http, rest.base, key, endpoint.endpoint_id)
                results[endpoint.description] = row
    finally:
        await rest.server.stop()
    assert receiver.seen == []
    for host, row in results.items():
        assert (row["status"], row["attempts"]) == ("failed", 1), (host, row)  # refused, and not retried
        assert row["last_error"].startswith("refused: "), (host, row)


async def test_a_name_that_rebinds_to_loopback_after_subscribing_is_refused_at_delivery(harness, receivers) -> None:
    """DNS rebinding: `localhost` answered with a public address when the webhook was created (the
    injected resolver plays that DNS server); when the worker delivers, it resolves for real, gets
    127.0.0.1, and refuses — the receiver listening there sees nothing."""
    h = harness
    receiver = await receivers()
    rest = await start_rest(h, Egress(allow_private=False, resolver=StubResolver({"localhost": ["93.184.216.34"]})))
    key = h.keys["admin_test"]
    try:
        async with aiohttp.ClientSession() as http:
            status, made = await post_hook(http, rest.base, key, receiver.url(host="localhost"), "rebind")
            assert status == 201, made
            async with http.post(f"{rest.base}/v1/webhooks/{made['id']}/test", headers=bearer(key, "t")) as r:
                assert r.status == 202
            (row,) = await deliveries_of(http, rest.base, key, made["id"])
    finally:
        await rest.server.stop()
    assert receiver.seen == []
    assert (row["status"], row["attempts"]) == ("failed", 1), row
    assert row["last_error"] == "refused: localhost resolves to 127.0.0.1, a loopback address", row


@pytest.mark.parametrize("settings_overrides", [{"webhook_allow_private": True}])
async def test_redirects_are_never_followed_and_proxies_are_ignored(harness, receivers, monkeypatch) -> None:
    h = harness
    front, inside, proxy = await receivers(), await receivers(), await receivers()
    for variable in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(variable, proxy.url("/proxy"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    rest = await start_rest(h)
    key = h.keys["admin_test"]
    targets = {"ok": front.url("/ok")}
    for code in (301, 302, 303, 307, 308):
        targets[f"r{code}"] = front.url(f"/r{code}")
    try:
        async with aiohttp.ClientSession() as http:
            made = {}
            for name, url in targets.items():
                status, body = await post_hook(http, rest.base, key, url, f"m-{name}")
                assert status == 201, body
                made[name] = body
            for round_, location in enumerate((inside.url("/stolen"), "http://169.254.169.254/latest/meta-data/"), 1):
                front.location = location
                for name, body in made.items():
                    async with http.post(f"{rest.base}/v1/webhooks/{body['id']}/test",
                                         headers=bearer(key, f"t-{name}-{round_}")) as r:
                        assert r.status == 202
                for name, body in made.items():
                    rows = await deliveries_of(http, rest.base, key, body["id"], count=round_)
                    for row in rows:
                        if name == "ok":
                            assert row["status"] == "delivered", row
                        else:
                            assert (row["status"], row["attempts"]) == ("failed", 1), (name, row)
                            assert row["last_error"] == f"HTTP {name[1:]}: redirects are not followed", row
    finally:
        await rest.server.stop()
    assert inside.seen == [] and proxy.seen == []
    assert sorted(path for path, _, _ in front.seen) == sorted(
        [f"/r{c}" for c in (301, 302, 303, 307, 308)] * 2 + ["/ok"] * 2)
    for path, body, headers in front.seen:
        if path == "/ok":  # the control: a genuine, signed delivery
            assert verify_signature(made["ok"]["secret"], body, headers["X-Gavel-Timestamp"],
                                    headers["X-Gavel-Signature"], datetime.now(UTC))
