"""The SSRF guard for webhook URLs: a customer's URL must never make the service call its own network.

``check_url`` is applied when a job is submitted and again before every delivery attempt. It refuses anything
but https (http only to loopback, and only where a developer's setting allows it), credentials in the URL,
IP literals in legacy spellings, and any host with an address that is not globally routable: every A/AAAA
record is checked, and the delivery connects to the address that was checked, so a DNS answer that changes
between the check and the connection (DNS rebinding) cannot redirect it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

# IPv6 ranges that embed an IPv4 address, and where it sits: an embedded private address is refused too.
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# Not global whatever Python's tables say in a given version: CGNAT, Teredo, local-use NAT64, benchmarking.
ALWAYS_REFUSED = tuple(
    ipaddress.ip_network(net)
    for net in ("100.64.0.0/10", "2001::/32", "64:ff9b:1::/48", "198.18.0.0/15", "2001:2::/48")
)
# Only digits, dots and hex markers: a host the C library would read as an IPv4 address in some spelling.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$", re.IGNORECASE)
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class UnsafeUrl(ValueError):
    """The URL is not one the service will call; the message says why."""


@dataclass(frozen=True)
class Target:
    """Where a checked URL leads: connect to ``address``, and send ``host`` as Host and TLS server name."""

    scheme: str
    host: str
    port: int
    path: str
    address: str

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def system_resolver(host: str, port: int) -> list[str]:
    """Every A and AAAA address of ``host`` (getaddrinfo); an empty list when it does not resolve."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return list(dict.fromkeys(str(answer[4][0]) for answer in answers))


def refusal(address: Address) -> str | None:
    """Why an address may not be called, or None for a globally routable unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = refusal(embedded)
            return f"{address} embeds {embedded}: {reason}" if reason else None
        if address.scope_id:
            return f"{address} is scoped to an interface"
    if any(address in network for network in ALWAYS_REFUSED):
        return f"{address} is in a special-purpose range"
    for attribute in ("loopback", "unspecified", "link_local", "multicast", "private", "reserved"):
        if getattr(address, f"is_{attribute}"):
            return f"{address} is a {attribute.replace('_', '-')} address"
    if not address.is_global:
        return f"{address} is not a global address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64 or (address in IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def check_url(url: str, *, allow_loopback_http: bool = False, resolve: Resolver = system_resolver) -> Target:
    """The target of a URL the service may call, or ``UnsafeUrl``.

    ``allow_loopback_http`` is for the local stack only: it admits ``http`` and ``https`` URLs whose host is
    on this machine's loopback (a webhook receiver a developer runs beside ``make run``), nothing else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise UnsafeUrl(f"not a valid URL: {error}") from error
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UnsafeUrl("the URL must use https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeUrl("the URL must not carry credentials")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeUrl("the URL has no host")
    port = port if port is not None else (443 if scheme == "https" else 80)
    if not 0 < port < 65536:
        raise UnsafeUrl("the port is out of range")

    literal = _ip_literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        if _NUMERIC_HOST.match(host):
            raise UnsafeUrl(f"{host!r} is an IP address in a non-standard spelling")
        try:
            ascii_host = host.encode("idna").decode("ascii").lower()
        except UnicodeError as error:
            raise UnsafeUrl(f"{host!r} is not a valid host name") from error
        if not all(_HOST_LABEL.match(label) for label in ascii_host.split(".")):
            raise UnsafeUrl(f"{host!r} is not a valid host name")
        host = ascii_host
        answers = resolve(host, port)
        if not answers:
            raise UnsafeUrl(f"{host} does not resolve")
        addresses = []
        for answer in answers:
            try:
                addresses.append(ipaddress.ip_address(answer.split("%", 1)[0]))
            except ValueError as error:
                raise UnsafeUrl(f"{host} does not resolve to an IP address") from error

    loopback_only = allow_loopback_http and all(address.is_loopback for address in addresses)
    if scheme == "http" and not loopback_only:
        raise UnsafeUrl("the URL must use https")
    if not loopback_only:
        for address in addresses:
            reason = refusal(address)
            if reason:
                # The message reaches the client: what a name resolved to (our view of DNS) stays with us.
                detail = f" ({reason})" if literal is not None else ""
                raise UnsafeUrl(f"{host} is not a public address{detail}")
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return Target(scheme=scheme, host=host, port=port, path=path, address=str(addresses[0]))


def _ip_literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
