"""Egress control for webhooks: the SSRF guard.

A webhook URL is chosen by a tenant, and the service connects to it from inside the network,
so a target on loopback, a private network, link-local (cloud metadata at 169.254.169.254),
CGNAT, multicast or a reserved range is refused unless `allow_private` is set. It is checked
twice:

- when a subscription is created or changed: `check_url` (or `Egress.check_url`) refuses a
  non-http(s) scheme, userinfo, a missing host, a forbidden literal address, and a name that
  resolves to a forbidden address;
- at every delivery, after DNS resolution: `GuardedResolver` (given to
  `aiohttp.TCPConnector(resolver=...)`) resolves with the default resolver and refuses the
  whole request if any address is forbidden, so the connection only ever goes to an address
  vetted at that moment (a name that resolved to a public address at subscription time and to
  a private one later — DNS rebinding — is refused). aiohttp does not consult the resolver for
  a literal IP host, so the delivery worker passes literal hosts through `check_host` itself.

`EgressRefused` is an `InvalidRequest` on the field `url`, so the REST layer answers 400.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from gavel.app.errors import FieldViolation, InvalidRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 2048


class EgressRefused(InvalidRequest):
    """A webhook target the service will not connect to; the message says why."""

    def __init__(self, message: str, field: str = "url"):
        super().__init__(message, (FieldViolation(field, message),))


def _networks(kind: str, cidrs: Iterable[str]) -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]]:
    return [(ipaddress.ip_network(cidr), kind) for cidr in cidrs]


# Most specific first is not needed: the ranges of one family do not overlap.
_FORBIDDEN_V4 = [
    *_networks("unspecified", ["0.0.0.0/8"]),  # "this network"
    *_networks("loopback", ["127.0.0.0/8"]),
    *_networks("private", ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"]),  # RFC 1918, CGNAT
    *_networks("link-local", ["169.254.0.0/16"]),
    *_networks("multicast", ["224.0.0.0/4"]),
    *_networks("reserved", [
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "198.18.0.0/15",  # benchmarking
        "240.0.0.0/4",  # reserved, and the broadcast address
    ]),
]
_FORBIDDEN_V6 = [
    *_networks("unspecified", ["::/128"]),
    *_networks("loopback", ["::1/128"]),
    *_networks("private", ["fc00::/7"]),  # unique local
    *_networks("link-local", ["fe80::/10", "fec0::/10"]),  # and the deprecated site-local
    *_networks("multicast", ["ff00::/8"]),
    *_networks("reserved", [
        "::/8",  # reserved, IPv4-compatible (IPv4-mapped ::ffff:0:0/96 is unwrapped before this check)
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, Teredo
        "2001:db8::/32", "3fff::/20",  # documentation
        "2002::/16",  # 6to4
        "5f00::/16",  # SRv6 SIDs
    ]),
]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known prefix: the IPv4 address in the low 32 bits


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"


def forbidden_kind(address: str | IPAddress) -> str | None:
    """Why `address` may not be a webhook target ("loopback", "private", "link-local",
    "unspecified", "multicast", "reserved"), or None if it is a public address. A string
    that is not an IP address is "invalid"."""
    if isinstance(address, str):
        try:
            address = ipaddress.ip_address(address)
        except ValueError:
            return "invalid"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return forbidden_kind(address.ipv4_mapped)
        if address.scope_id is not None:
            address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
        if address in _NAT64:
            return forbidden_kind(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        table = _FORBIDDEN_V6
    else:
        table = _FORBIDDEN_V4
    for network, kind in table:
        if address in network:
            return kind
    # Belt and braces: whatever the standard library also knows to be non-public.
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    return None


def _shown(address: IPAddress) -> str:
    """The address, with the IPv4 address inside an IPv4-mapped or NAT64 one."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped
        if inner is None and address in _NAT64:
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if inner is not None:
            return f"{address} ({inner})"
    return str(address)


def looks_like_ip(host: str) -> bool:
    """Whether aiohttp treats `host` as a literal address (and so skips the resolver)."""
    return ":" in host or host.replace(".", "").isdigit()


def check_host(host: str, allow_private: bool = False) -> None:
    """Refuse a literal IP host that is forbidden (or not a canonical address). Names pass:
    they are vetted after resolution."""
    if not looks_like_ip(host):
        return
    try:
        address = ipaddress.ip_address(host.replace("%25", "%"))
    except ValueError:
        raise EgressRefused(f"refused: {host} is not a canonical IP address") from None
    kind = forbidden_kind(address)
    if kind is not None and not allow_private:
        raise EgressRefused(f"refused: {_shown(address)} is {_article(kind)} {kind} address")


def parse_target(url: str) -> URL:
    """`url` as an absolute http(s) URL with a host and no userinfo, else `EgressRefused`."""
    if not isinstance(url, str) or not url:
        raise EgressRefused("refused: the URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise EgressRefused(f"refused: the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise EgressRefused(f"refused: not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        raise EgressRefused(f"refused: the scheme must be http or https, not {parsed.scheme or 'missing'!r}")
    if not parsed.raw_host:
        raise EgressRefused("refused: the URL has no host")
    if parsed.raw_user is not None or parsed.raw_password is not None or "@" in (parsed.raw_authority or ""):
        raise EgressRefused("refused: the URL may not contain a user name or password")
    _check_host_syntax(parsed.raw_host)
    return parsed


# A DNS name: letters, digits, `-` and `_` (seen in internal names) in labels of at most 63, an
# optional root dot. IDNs arrive here already as `xn--` labels.
_HOST_NAME = re.compile(r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.?",
                        re.IGNORECASE)
# URL parsers (WHATWG) and inet_aton read a host whose last label is a number — decimal, octal or
# 0x hex — as an IPv4 address: `0x7f.1`, `2130706433`, `0177.0.0.1` are all 127.0.0.1.
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)


def _check_host_syntax(host: str) -> None:
    """Refuse a host that is neither an IP literal nor a plain DNS name (percent-escapes, odd
    characters), and any IPv4 spelling but the canonical dotted quad: different parsers and
    resolvers read such hosts differently, and the guard must see what the connection will use."""
    if ":" in host:
        return  # an IPv6 literal: checked by check_host
    last = host.rstrip(".").rsplit(".", 1)[-1]
    if _NUMERIC_LABEL.fullmatch(last):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise EgressRefused(f"refused: {host} is not a canonical IP address") from None
        return
    if not _HOST_NAME.fullmatch(host):
        raise EgressRefused(f"refused: {host} is not a valid host name")


def check_resolved(host: str, results: Iterable[ResolveResult]) -> None:
    """Refuse if any address `host` resolved to is forbidden (DNS rebinding: one bad answer
    taints the whole answer)."""
    for result in results:
        kind = forbidden_kind(result["host"])
        if kind is not None:
            try:
                shown = _shown(ipaddress.ip_address(result["host"]))
            except ValueError:
                shown = result["host"]
            raise EgressRefused(f"refused: {host} resolves to {shown}, {_article(kind)} {kind} address")


async def check_url(url: str, allow_private: bool = False, resolver: AbstractResolver | None = None) -> None:
    """Vet a webhook URL at subscription time; raise `EgressRefused` with the reason.

    Unless `allow_private`, a literal address must be public and a name must resolve only to
    public addresses (with `resolver`, by default aiohttp's). A name that does not resolve now
    is accepted: every delivery resolves and checks again.
    """
    parsed = parse_target(url)
    host = parsed.raw_host
    assert host is not None
    check_host(host, allow_private)
    if allow_private or looks_like_ip(host):
        return
    own = resolver is None
    active = DefaultResolver() if resolver is None else resolver
    try:
        results = await active.resolve(host.rstrip(".") or host, parsed.port or 0, family=socket.AF_UNSPEC)
    except OSError:
        return  # unresolvable now; the delivery-time check decides
    finally:
        if own:
            await active.close()
    check_resolved(host, results)


class Egress:
    """The guard as configured (`--webhook-allow-private`): what the REST routes call."""

    def __init__(self, allow_private: bool = False, resolver: AbstractResolver | None = None):
        self.allow_private = allow_private
        self.resolver = resolver

    async def check_url(self, url: str) -> None:
        await check_url(url, self.allow_private, self.resolver)


class GuardedResolver(AbstractResolver):
    """Resolves with `inner` (default: aiohttp's default resolver) and refuses forbidden answers.

    Give it to `aiohttp.TCPConnector(resolver=..., use_dns_cache=False)`: the connector then
    connects only to the addresses returned here, all of them vetted.
    """

    def __init__(self, inner: AbstractResolver | None = None, allow_private: bool = False):
        self._inner = inner
        self._own_inner = inner is None
        self.allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = DefaultResolver()  # created on the running loop
        results = await self._inner.resolve(host, port, family)
        if not self.allow_private:
            check_resolved(host, results)
        return results

    async def close(self) -> None:
        if self._own_inner and self._inner is not None:
            await self._inner.close()
            self._inner = None
