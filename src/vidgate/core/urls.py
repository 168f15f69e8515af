"""Which URLs and addresses vidgate may reach for a client (input images, webhooks).

Both kinds of URL are chosen by the client, so without a check a client could make the
gateway reach into its own private network (SSRF). This module is the policy, with no
I/O: ``check_outbound_url`` parses a URL strictly (anything it accepts can be requested
as it is), and ``address_refusal`` says why an address is not public. The names are
resolved, and every address is checked, at connect time by ``vidgate.net.public_http``,
which then connects to exactly the addresses it checked: a check here followed by a
second lookup in an HTTP client could be raced by a name that changes its answer (DNS
rebinding). Only https to public addresses passes, unless the operator allows plain
http and private hosts (tests, trusted networks).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from urllib.parse import quote, urlsplit

import idna

from vidgate.core.errors import InvalidParameter

MAX_URL_CHARS = 2048

IPAddress = IPv4Address | IPv6Address

# Every IPv4 block that is not globally reachable unicast (IANA's special-purpose
# registry, multicast, the reserved 240/4), plus the retired 6to4 relay anycast block.
# Our own table rather than ``ipaddress.is_global``: that answer differs between Python
# releases (3.11.7 calls 100.64.0.0/10 neither private nor global, and 192.88.99.1
# global). The first matching block names the reason, so narrower blocks come first.
_IPV4_NOT_PUBLIC: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(block), reason)
    for block, reason in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared carrier-grade NAT"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved for IETF protocols"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "retired 6to4 relay"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
    )
)

# IPv6 is an allow-list: public unicast is 2000::/3 (every global allocation IANA has
# made), less the special blocks inside it below. Everything outside 2000::/3 is refused
# (loopback, unspecified, ULA, link-local, site-local, multicast, discard-only, SRv6,
# and the IPv4-mapped, -compatible and -translated forms), except the NAT64 well-known
# prefix, which is judged by the IPv4 address it carries (see ``address_refusal``). The
# names below only make the reason readable.
_IPV6_PUBLIC_RANGE = IPv6Network("2000::/3")
_NAT64_WELL_KNOWN = IPv6Network("64:ff9b::/96")
_IPV6_NOT_PUBLIC: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(block), reason)
    for block, reason in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::ffff:0:0/96", "IPv4-mapped"),
        ("::ffff:0:0:0/96", "IPv4-translated"),
        ("::/96", "IPv4-compatible"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        # Teredo carries a server and an (obfuscated) client IPv4 address; the rest of
        # 2001::/23 is protocol anycast, benchmarking and ORCHID, never a web host.
        ("2001::/32", "Teredo"),
        ("2001::/23", "reserved for IETF protocols"),
        ("2001:db8::/32", "documentation"),
        ("2002::/16", "6to4"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "SRv6 segment identifier"),
        ("fc00::/7", "unique local (private)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    )
)


def address_refusal(address: IPAddress | str) -> str | None:
    """Why ``address`` is not a public address vidgate may connect to, or None if it is.

    Transition forms that carry an IPv4 address are refused outright (IPv4-mapped,
    -compatible and -translated, 6to4, Teredo, local-use NAT64), with one exception: the
    NAT64 well-known prefix ``64:ff9b::/96``, which DNS64 resolvers on IPv6-only networks
    put in front of every IPv4-only host, is as public as the IPv4 address it carries.
    Text that is not an IP address is refused too.
    """
    if isinstance(address, str):
        try:
            # A scope (``fe80::1%eth0``) never makes an address public: judge it without.
            address = ipaddress.ip_address(address.partition("%")[0])
        except ValueError:
            return "not an IP address"
    if isinstance(address, IPv4Address):
        for block4, reason in _IPV4_NOT_PUBLIC:
            if address in block4:
                return reason
        return None
    if address in _NAT64_WELL_KNOWN:
        carried = IPv4Address(int(address) & 0xFFFFFFFF)
        inner = address_refusal(carried)
        return None if inner is None else f"NAT64 form of a {inner} IPv4 address"
    for block6, reason in _IPV6_NOT_PUBLIC:
        if address in block6:
            return reason
    if address not in _IPV6_PUBLIC_RANGE:
        return "reserved"
    return None


@dataclass(frozen=True)
class OutboundURL:
    """A URL as ``check_outbound_url`` accepted it, ready to request."""

    scheme: str
    # ASCII host: an IDNA-encoded name, or an address without brackets.
    host: str
    port: int
    # The host as an address when the URL names one, which no resolver will check.
    ip: IPAddress | None
    # The URL to send: percent-encoded ASCII, no fragment.
    request_url: str


_SCHEMES = {"https": 443, "http": 80}
_ASCII_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")
# RFC 3986 userinfo: unreserved, percent-escapes, sub-delims and ':'.
_USERINFO = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:]|%[0-9A-Fa-f]{2}")
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
# A host whose last label is a number is an IPv4 address to URL parsers (WHATWG) and to
# inet_aton (``127.1``, ``0x7f.1``, ``2130706433``); only the dotted-quad form is taken.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# RFC 3986 pchar, less '%' (kept as escapes once checked); '?' may also appear in a query.
_PATH_SAFE = "/:@!$&'()*+,;=%"
_QUERY_SAFE = _PATH_SAFE + "?"


class _Malformed(ValueError):
    """What is wrong with a URL, in words."""


def _no_invisible(url: str) -> None:
    if _ASCII_FORBIDDEN.search(url):
        raise _Malformed("it contains a space or a control character")
    for char in url:
        # Control, format, surrogate, private-use, unassigned and separator characters.
        if not char.isascii() and unicodedata.category(char)[0] in "CZ":
            raise _Malformed("it contains an invisible or control character")


def _host(raw: str) -> tuple[str, IPAddress | None]:
    if raw.startswith("["):
        if not raw.endswith("]"):
            raise _Malformed("its IPv6 address is not closed with ']'")
        inner = raw[1:-1]
        if "%" in inner:
            raise _Malformed("its IPv6 address has a zone identifier")
        try:
            address6 = IPv6Address(inner)
        except ValueError:
            raise _Malformed("the address in brackets is not an IPv6 address") from None
        return str(address6), address6
    if not raw:
        raise _Malformed("it has no host")
    if raw.isascii():
        name = raw.lower()
    else:
        try:
            name = idna.encode(raw, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError):
            raise _Malformed("its host is not a valid international domain name") from None
    bare = name.removesuffix(".")
    labels = bare.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:
            address4 = IPv4Address(name)
        except ValueError:
            raise _Malformed("its host is not a dotted-quad IPv4 address") from None
        return name, address4
    if len(bare) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise _Malformed("its host is not a valid host name")
    if any(label.startswith("xn--") for label in labels):
        try:
            # An A-label that does not decode would fail later, in yarl or aiohttp.
            idna.decode(bare)
        except (idna.IDNAError, UnicodeError, ValueError):
            raise _Malformed("its host is not a valid international domain name") from None
    return name, None


def _port(raw: str, scheme: str) -> tuple[int, bool]:
    if not raw:
        return _SCHEMES[scheme], False
    if not raw.isascii() or not raw.isdigit() or len(raw) > 5 or not 0 < int(raw) < 65536:
        raise _Malformed("its port is not a number from 1 to 65535")
    return int(raw), True


def _encoded(part: str, safe: str) -> str:
    if _BAD_ESCAPE.search(part):
        raise _Malformed("it has a '%' that does not start a percent-escape")
    return quote(part, safe=safe)


def _parse(url: str, allowed: tuple[str, ...]) -> OutboundURL:
    _no_invisible(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        # urlsplit's complaints: unbalanced or invalid brackets, and characters that
        # turn into URL delimiters under NFKC normalization.
        raise _Malformed("its host part is malformed") from None
    scheme = parts.scheme
    if scheme not in allowed or not parts.netloc:
        raise _Malformed(f"it must be an absolute {' or '.join(s + '://' for s in allowed)} URL")
    userinfo, _, hostport = parts.netloc.rpartition("@")
    if userinfo and "".join(_USERINFO.findall(userinfo)) != userinfo:
        raise _Malformed("its user name or password has characters that must be escaped")
    if hostport.startswith("["):
        bracket, _, after = hostport.partition("]")
        raw_host, raw_port = bracket + "]", after
        if raw_port and not raw_port.startswith(":"):
            raise _Malformed("it has text between the IPv6 address and the port")
        raw_port = raw_port[1:]
    else:
        raw_host, _, raw_port = hostport.partition(":")
    host, ip = _host(raw_host)
    port, explicit = _port(raw_port, scheme)
    netloc = f"[{host}]" if isinstance(ip, IPv6Address) else host
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    if explicit:
        netloc = f"{netloc}:{port}"
    target = _encoded(parts.path, _PATH_SAFE) or "/"
    if parts.query:
        target += "?" + _encoded(parts.query, _QUERY_SAFE)
    return OutboundURL(scheme, host, port, ip, f"{scheme}://{netloc}{target}")


def check_outbound_url(url: str, *, allow_insecure: bool, param: str) -> OutboundURL:
    """``url`` parsed strictly, or ``InvalidParameter`` (never another error) saying why not.

    Refused: more than ``MAX_URL_CHARS``, spaces and control or invisible characters,
    other schemes (plain http too, unless ``allow_insecure``), malformed hosts, ports,
    userinfo and percent-escapes, IPv6 zone identifiers, and IPv4 hosts other than
    dotted quads. Unless ``allow_insecure``, a host that is an address must be public;
    a host name is resolved and checked only when it is called (``vidgate.net``).
    """
    if len(url) > MAX_URL_CHARS:
        raise InvalidParameter(f"{param} is longer than {MAX_URL_CHARS} characters", param=param)
    allowed = ("https", "http") if allow_insecure else ("https",)
    try:
        target = _parse(url, allowed)
    except _Malformed as exc:
        raise InvalidParameter(f"{param} is not a usable URL: {exc}", param=param) from None
    if not allow_insecure and target.ip is not None:
        reason = address_refusal(target.ip)
        if reason is not None:
            raise InvalidParameter(
                f"{param} names a non-public address ({target.host} is {reason});"
                " vidgate only calls public addresses",
                param=param,
            )
    return target
