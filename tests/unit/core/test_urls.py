"""The SSRF policy: which addresses are public, and strict parsing of client-chosen URLs."""

from __future__ import annotations

import ipaddress
import string

import pytest
import yarl
from hypothesis import given, settings
from hypothesis import strategies as st

from vidgate.core.errors import InvalidParameter
from vidgate.core.urls import MAX_URL_CHARS, address_refusal, check_outbound_url

# (address, a word the reason must contain). Every form an attacker tries to reach the
# gateway's own host, its network or a cloud metadata service with.
NOT_PUBLIC = [
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("192.0.0.170", "IETF"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.1", "benchmarking"),
    ("192.88.99.1", "6to4"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("100::1", "discard"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("5f00::1", "SRv6"),
    # IPv6 forms that carry an IPv4 address.
    ("::ffff:127.0.0.1", "IPv4-mapped"),
    ("::ffff:8.8.8.8", "IPv4-mapped"),
    ("::127.0.0.1", "IPv4-compatible"),
    ("::8.8.8.8", "IPv4-compatible"),
    ("::ffff:0:7f00:1", "IPv4-translated"),
    ("64:ff9b::7f00:1", "NAT64 form of a loopback"),
    ("64:ff9b::a9fe:a9fe", "NAT64 form of a link-local"),
    ("64:ff9b::a00:1", "NAT64 form of a private"),
    ("64:ff9b:1::a00:1", "local-use NAT64"),
    ("64:ff9b:1::808:808", "local-use NAT64"),
    ("2002:7f00:1::", "6to4"),
    ("2002:a9fe:a9fe::", "6to4"),
    ("2002:808:808::1", "6to4"),
    # Teredo: server 65.54.227.120, client 192.0.2.45 (obfuscated); and a private server.
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("2001:0:a00:1::1", "Teredo"),
    ("2001:2::1", "IETF"),
    ("2001:20::1", "IETF"),
    ("4000::1", "reserved"),
    ("::2", "IPv4-compatible"),
    ("not an address", "not an IP address"),
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.63.255.255",
    "100.128.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.0.1.1",
    "198.17.255.255",
    "198.20.0.0",
    "223.255.255.255",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "2a00:1450:4001::1",
    "2620:fe::fe",
    # DNS64 puts this in front of IPv4-only hosts on IPv6-only networks.
    "64:ff9b::808:808",
]


@pytest.mark.parametrize(("address", "reason"), NOT_PUBLIC)
def test_non_public_addresses_are_refused_with_a_reason(address: str, reason: str) -> None:
    refusal = address_refusal(address)
    assert refusal is not None and reason in refusal


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert address_refusal(address) is None
    assert address_refusal(ipaddress.ip_address(address)) is None


def test_python_is_global_alone_would_let_embedded_forms_through() -> None:
    """Why the policy keeps its own tables: Python 3.11's answer for these is 'global'."""
    leaky = ["::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::", "fec0::1", "192.88.99.1"]
    assert any(ipaddress.ip_address(a).is_global for a in leaky)
    assert all(address_refusal(a) is not None for a in leaky)


def _check(url: str, *, allow_insecure: bool = False) -> str:
    return check_outbound_url(url, allow_insecure=allow_insecure, param="webhook_url").request_url


def _refused(url: str, *, allow_insecure: bool = False) -> str:
    with pytest.raises(InvalidParameter) as info:
        check_outbound_url(url, allow_insecure=allow_insecure, param="webhook_url")
    assert info.value.param == "webhook_url"
    assert info.value.status_code == 400
    return info.value.message


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://[::1/", "host part is malformed"),
        ("https://[1.2.3.4]/", "host part is malformed"),
        ("https://[v1.abc]/", "not an IPv6 address"),
        ("https://example.com:abc/", "port"),
        ("https://example.com:0/", "port"),
        ("https://example.com:65536/", "port"),
        ("https://example.com:+443/", "port"),
        ("https://example.com:\uff14\uff14\uff13/", "port"),
        ("https://example.com:1:2/", "port"),
        ("https://example.com/a\x7fb", "control character"),
        ("https://example.com/a\x00b", "control character"),
        ("https://example.com/a b", "space"),
        ("https://example.com/a\tb", "control character"),
        ("https://example.com/\u00a0", "invisible"),
        ("https://example.com/\u200b", "invisible"),
        ("https://example.com/\u2028", "invisible"),
        ("https://example.com/\ud800", "invisible"),
        (" https://example.com/", "space"),
        ("https://exa%6dple.com/", "host name"),
        ("https://a..b/", "host name"),
        ("https://-a.example/", "host name"),
        ("https://a_b!.example/", "host name"),
        ("https://" + "a" * 64 + ".example/", "host name"),
        ("https://example.com/%zz", "percent-escape"),
        ("https://example.com/?q=%", "percent-escape"),
        ("https://a\\@example.com/", "user name or password"),
        ("https://u@v@example.com/", "user name or password"),
        ("https://[fe80::1%25eth0]/", "zone identifier"),
        ("https://[::1]x/", "between the IPv6 address and the port"),
        # Numeric hosts other than dotted quads are IPv4 to some parsers: refused.
        ("https://2130706433/", "dotted-quad"),
        ("https://0x7f000001/", "dotted-quad"),
        ("https://0x7f.1/", "dotted-quad"),
        ("https://0177.0.0.1/", "dotted-quad"),
        ("https://127.1/", "dotted-quad"),
        ("https://1.2.3.4./", "dotted-quad"),
        ("https://example.123/", "dotted-quad"),
        ("https://%31%32%37.0.0.1/", "dotted-quad"),
        ("https://%6cocalhost/", "host name"),
        ("https:example.com/", "absolute https://"),
        ("https:///x", "absolute https://"),
        ("//example.com/", "absolute https://"),
        ("ftp://example.com/", "absolute https://"),
        ("http://example.com/", "absolute https://"),
        ("javascript:alert(1)", "absolute https://"),
        ("", "absolute https://"),
        ("https://xn--zz.example/", "international"),
        ("https://ex\u00e4mple\u3002com\uff0f/", "host part is malformed"),
    ],
)
def test_malformed_urls_are_a_400_in_words(url: str, words: str) -> None:
    message = _refused(url)
    assert words in message, message
    assert message.startswith("webhook_url ")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://127.0.0.1/", "127.0.0.1 is loopback"),
        ("https://10.1.2.3:8443/", "private"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[::1]/", "loopback"),
        ("https://[::]/", "unspecified"),
        ("https://[::ffff:7f00:1]/", "IPv4-mapped"),
        ("https://[::ffff:127.0.0.1]/", "IPv4-mapped"),
        ("https://[::127.0.0.1]/", "IPv4-compatible"),
        ("https://[64:ff9b::7f00:1]/", "NAT64"),
        ("https://[64:ff9b::a9fe:a9fe]/", "NAT64"),
        ("https://[64:ff9b:1::a00:1]/", "NAT64"),
        ("https://[2002:7f00:1::]/", "6to4"),
        ("https://[2002:a9fe:a9fe::]/", "6to4"),
        ("https://[2001:0:a00:1::1]/", "Teredo"),
        ("https://[FE80::1]/", "link-local"),
        ("https://[fc00::1]/", "unique local"),
        ("https://[fec0::1]/", "site-local"),
        ("https://[ff02::1]/", "multicast"),
        ("https://0.0.0.0/", "unspecified"),
        ("https://255.255.255.255/", "broadcast"),
        ("https://100.64.0.1/", "carrier-grade NAT"),
        ("https://198.18.0.1/", "benchmarking"),
        ("https://224.0.0.1/", "multicast"),
        ("https://240.0.0.1/", "reserved"),
        # An IDNA host that maps to digits is an address too.
        ("https://①②⑦.0.0.1/", "loopback"),
    ],
)
def test_addresses_in_urls_must_be_public(url: str, words: str) -> None:
    message = _refused(url)
    assert "non-public address" in message and words in message, message


def test_private_hosts_and_http_pass_when_insecure_urls_are_allowed() -> None:
    assert _check("http://127.0.0.1:8080/hook", allow_insecure=True) == (
        "http://127.0.0.1:8080/hook"
    )
    assert _check("https://[::1]/x", allow_insecure=True) == "https://[::1]/x"
    # Strict parsing applies all the same.
    assert "port" in _refused("http://127.0.0.1:x/", allow_insecure=True)
    assert "absolute https:// or http://" in _refused("ftp://h/", allow_insecure=True)


@pytest.mark.parametrize(
    ("url", "sent"),
    [
        ("https://example.com", "https://example.com/"),
        ("HTTPS://Example.COM/A?B=C#frag", "https://example.com/A?B=C"),
        ("https://example.com:/x", "https://example.com/x"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
        ("https://user:p%40ss@example.com/x", "https://user:p%40ss@example.com/x"),
        # A pre-signed URL's query is sent byte for byte.
        (
            "https://b.s3.amazonaws.com/k.png?X-Amz-Signature=ab%2Fcd&X-Amz-Date=20250101T000000Z",
            "https://b.s3.amazonaws.com/k.png?X-Amz-Signature=ab%2Fcd&X-Amz-Date=20250101T000000Z",
        ),
        ("https://example.com/ä ?q=ü".replace(" ", ""), "https://example.com/%C3%A4?q=%C3%BC"),
        ("https://example.com/a|b{c}", "https://example.com/a%7Cb%7Bc%7D"),
        ("https://bücher.example/", "https://xn--bcher-kva.example/"),
        ("https://cdn_1.example./x", "https://cdn_1.example./x"),
        ("https://8.8.8.8/x", "https://8.8.8.8/x"),
        ("https://[2606:4700:4700:0::1111]:443/", "https://[2606:4700:4700::1111]:443/"),
        ("https://[64:ff9b::8.8.8.8]/", "https://[64:ff9b::808:808]/"),
    ],
)
def test_accepted_urls_are_sent_in_canonical_form(url: str, sent: str) -> None:
    assert _check(url) == sent


def test_length_cap() -> None:
    base = "https://example.com/"
    assert _check(base + "a" * (MAX_URL_CHARS - len(base)))
    assert "longer than 2048" in _refused(base + "a" * (MAX_URL_CHARS - len(base) + 1))


def _assert_usable_or_refused(url: str) -> None:
    try:
        target = check_outbound_url(url, allow_insecure=False, param="image")
    except InvalidParameter as exc:
        assert exc.param == "image" and exc.message.startswith("image ")
        return
    # Accepted: it is a URL aiohttp sends as it is, to the host and port we checked.
    parsed = yarl.URL(target.request_url, encoded=True)
    assert parsed.scheme == "https"
    assert parsed.raw_host == target.host and parsed.port == target.port
    assert target.request_url.isascii() and target.request_url.isprintable()
    assert " " not in target.request_url
    if target.ip is not None:
        assert address_refusal(target.ip) is None


_URLISH = st.text(
    alphabet=st.sampled_from(
        [*string.printable, "\x00", "\x7f", "\u00a0", "ä", "①", "\u3002", "\ud800", "%"]
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(max_size=60))
def test_any_text_is_a_url_or_a_400(text: str) -> None:
    _assert_usable_or_refused(text)


@settings(max_examples=400, deadline=None, database=None)
@given(
    st.sampled_from(["https://", "HTTPS://", "https:", "https:///", "https://[", "https://u:p@"]),
    _URLISH,
    st.sampled_from(["", ":", ":443", ":abc", ":99999", "]", "]:1"]),
    _URLISH,
)
def test_any_url_shaped_text_is_a_url_or_a_400(
    prefix: str, host: str, port: str, rest: str
) -> None:
    _assert_usable_or_refused(prefix + host + port + "/" + rest)
