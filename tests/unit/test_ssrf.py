"""The SSRF guard: every URL a customer could use to reach our own network is refused (DNS is injected)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from videojobs.ssrf import UnsafeUrl, check_url

# A fake DNS: names a test controls, so no lookup leaves the machine.
DNS = {
    "public.example": ["93.184.215.14"],
    "localhost": ["127.0.0.1", "::1"],
    "rebind.example": ["127.0.0.1"],
    "metadata.example": ["169.254.169.254"],
    "mixed.example": ["93.184.215.14", "10.0.0.7"],
    "v6private.example": ["fd00::1"],
    "v6public.example": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "weird.example": ["not-an-ip"],
}


def resolve(host: str, port: int) -> list[str]:
    return DNS.get(host, [])


REFUSED = [
    # Schemes and URL forms.
    "http://public.example/hook",  # plain http
    "ftp://public.example/hook",
    "file:///etc/passwd",
    "gopher://public.example:70/_",
    "https://user:pass@public.example/hook",  # credentials
    "https://user@public.example/hook",
    "https://public.example:0/hook",  # no such port
    "https://public.example:99999/hook",
    "https:///hook",  # no host
    "https://nowhere.example/hook",  # does not resolve
    "https://weird.example/hook",  # resolves to garbage
    # Names that resolve to forbidden addresses.
    "https://localhost/hook",
    "https://rebind.example/hook",  # a public-looking name resolving to 127.0.0.1
    "https://metadata.example/latest/meta-data/",
    "https://mixed.example/hook",  # one bad address among good ones is enough
    "https://v6private.example/hook",
    # IPv4 literals.
    "https://127.0.0.1/hook",
    "https://127.1.2.3/hook",
    "https://10.1.2.3/hook",
    "https://172.16.0.1/hook",
    "https://192.168.1.1/hook",
    "https://169.254.169.254/latest/meta-data/",  # EC2 instance metadata
    "https://169.254.170.2/v2/credentials",  # ECS/Lambda container credentials
    "https://100.64.0.1/hook",  # CGNAT
    "https://0.0.0.0/hook",
    "https://224.0.0.1/hook",  # multicast
    "https://255.255.255.255/hook",
    "https://198.18.0.1/hook",  # benchmarking
    # The same, spelled otherwise.
    "https://2130706433/hook",  # decimal 127.0.0.1
    "https://0x7f000001/hook",  # hex
    "https://017700000001/hook",  # octal
    "https://0177.0.0.1/hook",  # octal dotted
    "https://127.1/hook",  # short form
    "https://0x7f.0.0.1/hook",
    # IPv6 literals and IPv4 embedded in IPv6.
    "https://[::1]/hook",
    "https://[::]/hook",
    "https://[fe80::1]/hook",
    "https://[fc00::1]/hook",
    "https://[ff02::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",  # IPv4-mapped
    "https://[::ffff:169.254.169.254]/hook",
    "https://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254
    "https://[2002:7f00:1::1]/hook",  # 6to4 of 127.0.0.1
    "https://[2002:a00:1::1]/hook",  # 6to4 of 10.0.0.1
    "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook",  # Teredo
    "https://[::127.0.0.1]/hook",  # IPv4-compatible
]


@pytest.mark.parametrize("url", REFUSED)
def test_unsafe_url_is_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        check_url(url, resolve=resolve)


def test_the_table_is_large_enough() -> None:
    assert len(REFUSED) >= 25


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("https://public.example/hook?x=1", "93.184.215.14"),
        ("https://v6public.example:8443/hook", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"),
        ("https://93.184.215.14/hook", "93.184.215.14"),
        ("https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"),
    ],
)
def test_public_https_url_is_pinned_to_the_checked_address(url: str, address: str) -> None:
    target = check_url(url, resolve=resolve)
    assert target.address == address
    assert target.scheme == "https"


def test_target_keeps_the_name_for_host_header_and_sni() -> None:
    target = check_url("https://PUBLIC.example:8443/a/b?c=d", resolve=resolve)
    assert (target.host, target.port, target.path, target.host_header) == (
        "public.example",
        8443,
        "/a/b?c=d",
        "public.example:8443",
    )


def test_loopback_http_is_allowed_only_with_the_developer_setting() -> None:
    with pytest.raises(UnsafeUrl):
        check_url("http://127.0.0.1:9000/hook", resolve=resolve)
    target = check_url("http://127.0.0.1:9000/hook", resolve=resolve, allow_loopback_http=True)
    assert (target.address, target.port, target.host_header) == ("127.0.0.1", 9000, "127.0.0.1:9000")
    # The setting opens loopback only: private networks and plain http elsewhere stay closed.
    for url in (
        "http://10.0.0.1/hook",
        "http://public.example/hook",
        "https://169.254.169.254/",
        "https://mixed.example/hook",
    ):
        with pytest.raises(UnsafeUrl):
            check_url(url, resolve=resolve, allow_loopback_http=True)


def test_the_resolver_is_asked_for_every_check() -> None:
    """A name checked once and then rebound to a private address is refused at the next check."""
    answers = {"flip.example": ["93.184.215.14"]}
    assert check_url("https://flip.example/", resolve=lambda h, p: answers.get(h, [])).address == "93.184.215.14"
    answers["flip.example"] = ["127.0.0.1"]
    with pytest.raises(UnsafeUrl):
        check_url("https://flip.example/", resolve=lambda h, p: answers.get(h, []))


@pytest.mark.parametrize(
    ("url", "resolved"),
    [
        ("https://rebind.example/hook", "127.0.0.1"),
        ("https://metadata.example/latest/meta-data/", "169.254.169.254"),
        ("https://mixed.example/hook", "10.0.0.7"),
        ("https://v6private.example/hook", "fd00::1"),
        ("https://weird.example/hook", "not-an-ip"),
    ],
)
def test_refusal_of_a_name_does_not_echo_what_it_resolved_to(url: str, resolved: str) -> None:
    # The message reaches the client: it must not map our resolver's view of private networks for them.
    with pytest.raises(UnsafeUrl) as refused:
        check_url(url, resolve=resolve)
    assert resolved not in str(refused.value)
    assert urlsplit(url).hostname in str(refused.value)
