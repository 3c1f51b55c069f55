"""Guards for untrusted image arguments: local paths and http(s) URLs chosen by an agent.

An agent's model picks the arguments of an image tool, so they are untrusted input
(prompt injection can put any string there). These guards are framework-neutral; the
LangChain tool and the LlamaIndex tool spec both use them.

- :func:`check_image_url` accepts only ``http``/``https`` URLs whose host is a public
  address. IP literals are recognised in every spelling an HTTP client or the C
  library accepts (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``, IPv6,
  IPv4-mapped/6to4/NAT64 IPv6, trailing dots, full-width digits); names such as
  ``localhost`` or ``*.internal`` are refused outright; any other name is resolved
  and refused if *any* of its addresses is loopback, private, link-local (cloud
  metadata at ``169.254.169.254``), shared (``100.64.0.0/10``, e.g. Alibaba Cloud
  metadata), multicast or reserved. Credentials in the URL (``http://a@b/``),
  backslashes, percent-encoded hosts and control characters are refused, so no
  URL parser can read a different host than the one checked.
- :func:`read_allowed_file` reads a local file only if, after resolving symlinks and
  ``..``, it is a regular file inside one of ``allowed_dirs`` (none when the list is
  empty); it opens the resolved path and checks that the opened file is the one that
  was checked.
- :func:`check_image_argument` does both: a URL is checked, anything else is a path.

Every refusal raises :class:`GuardError`, whose message says why in words an agent
can act on; nothing is read and no request is made for a refused argument.

Example:
    >>> check_image_url("https://93.184.215.14/cat.png")
    'https://93.184.215.14/cat.png'
    >>> check_image_url("http://2130706433/")
    Traceback (most recent call last):
    ...
    siliconvision.guards.GuardError: refused URL http://2130706433/: host 2130706433 means \
127.0.0.1, a loopback address; only public http(s) URLs are allowed
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeAlias

from .errors import SiliconVisionError

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "AllowedFile",
    "GuardError",
    "Resolver",
    "check_image_argument",
    "check_image_url",
    "classify_address",
    "read_allowed_file",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver: TypeAlias = Callable[[str, int], Iterable[str]]
"""``resolver(host, port)`` -> the IP address strings ``host`` resolves to."""

DEFAULT_MAX_FILE_BYTES: Final = 50 * 1024 * 1024

_BLOCKED_NAMES: Final = frozenset(
    {"localhost", "localhost.localdomain", "metadata", "instance-data", "ip6-localhost"}
)
_BLOCKED_SUFFIXES: Final = (
    ".localhost",
    ".local",
    ".localdomain",
    ".internal",
    ".home.arpa",
    ".in-addr.arpa",
    ".ip6.arpa",
)
_V4_BLOCKED: Final = tuple(
    (ipaddress.IPv4Network(net), why)
    for net, why in (
        ("0.0.0.0/8", "a 'this network' address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a shared (carrier-grade NAT / cloud metadata) address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local (cloud metadata) address"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "a reserved (IETF protocol) address"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a reserved (6to4 relay) address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),
    )
)
_V6_BLOCKED: Final = tuple(
    (ipaddress.IPv6Network(net), why)
    for net, why in (
        ("::1/128", "a loopback address"),
        ("::/128", "the unspecified address"),
        ("::/8", "a reserved (IPv4-compatible) address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("100::/64", "a discard-only address"),
        ("2001::/23", "a reserved (IETF protocol / Teredo) address"),
        ("2001:db8::/32", "a documentation address"),
        ("fc00::/7", "a private (unique local) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
    )
)
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_SIXTOFOUR: Final = ipaddress.IPv6Network("2002::/16")


class GuardError(SiliconVisionError, ValueError):
    """An untrusted image argument was refused; the message says why (safe to show).

    >>> str(GuardError("refused path x: outside the allowed directories"))
    'refused path x: outside the allowed directories'
    """


@dataclass(frozen=True)
class AllowedFile:
    """A local file that passed :func:`read_allowed_file`: its real path and bytes.

    >>> read_allowed_file("cat.png", ["/srv/images"]).path  # doctest: +SKIP
    PosixPath('/srv/images/cat.png')
    """

    path: Path
    data: bytes


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIXTOFOUR:
        return ip.sixtofour
    return None


def classify_address(ip: IPAddress) -> str | None:
    """Why ``ip`` must not be fetched (e.g. ``"a loopback address"``), or ``None`` if public.

    >>> classify_address(ipaddress.ip_address("169.254.169.254"))
    'a link-local (cloud metadata) address'
    >>> classify_address(ipaddress.ip_address("::ffff:10.0.0.1"))
    'an IPv4-mapped IPv6 form of 10.0.0.1, a private address'
    >>> classify_address(ipaddress.ip_address("8.8.8.8")) is None
    True
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "a scoped (zone) IPv6 address"
        embedded = _embedded_v4(ip)
        if embedded is not None:
            why = classify_address(embedded)
            if why is not None:
                kind = "IPv4-mapped" if ip.ipv4_mapped is not None else "IPv4-embedding"
                return f"an {kind} IPv6 form of {embedded}, {why}"
            if ip.ipv4_mapped is not None:
                return None
        for network, reason in _V6_BLOCKED:
            if ip in network:
                return reason
    else:
        for network4, reason in _V4_BLOCKED:
            if ip in network4:
                return reason
        if ip == ipaddress.IPv4Address("255.255.255.255"):
            return "the broadcast address"
    if not ip.is_global:
        return "a non-public address"
    return None


def _parse_ip_literal(host: str) -> IPAddress | None:
    """``host`` as an IP address if any common parser would read it as one."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    # inet_aton accepts what curl, browsers and the C library accept: decimal
    # (2130706433), hex (0x7f000001), octal (0177.0.0.1) and short forms (127.1).
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except (OSError, ValueError):
            return None
    return None


def _normalise_host(raw: str, shown: str) -> str:
    host = unicodedata.normalize("NFKC", raw).lower()
    host = host.rstrip(".") if not host.startswith("[") else host
    if not host:
        raise GuardError(f"refused URL {shown}: no host")
    if any(c in host for c in "%\\@ ") or any(ord(c) < 33 or ord(c) == 127 for c in host):
        raise GuardError(f"refused URL {shown}: the host contains characters a URL host cannot")
    if ":" in host:  # IPv6 literal (urlsplit strips the brackets)
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise GuardError(f"refused URL {shown}: the host {host!r} is not a valid name") from None


def _shown(url: str) -> str:
    """The URL as safe to show: no userinfo, no query, at most 120 characters."""
    try:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = "***@" + netloc.rsplit("@", 1)[-1]
        text = f"{parts.scheme}://{netloc}{parts.path}"
        if parts.query or parts.fragment:
            text += "?…"
    except ValueError:
        text = url
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= 120 else text[:119] + "…"


def check_image_url(
    url: str,
    *,
    allow_private: bool = False,
    resolver: Resolver | None = None,
) -> str:
    """Return ``url`` if it is an http(s) URL to a public host; raise :class:`GuardError`.

    ``allow_private=True`` skips the address checks (not the shape checks).
    ``resolver(host, port)`` returns the addresses of a name (default:
    :func:`socket.getaddrinfo`); it is called only for names, never for IP literals,
    and a name that does not resolve is refused.

    >>> check_image_url("file:///etc/passwd")
    Traceback (most recent call last):
    ...
    siliconvision.guards.GuardError: refused URL file:///etc/passwd: only http and https \
URLs are allowed
    """
    if not isinstance(url, str):
        raise GuardError(f"refused URL: expected a string, got {type(url).__name__}")
    shown = _shown(url)
    if any(ord(c) < 32 or ord(c) == 127 or c.isspace() for c in url) or "\\" in url:
        raise GuardError(
            f"refused URL {shown}: it contains whitespace, control characters or backslashes"
        )
    try:
        parts = urllib.parse.urlsplit(url)
        raw_host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise GuardError(f"refused URL {shown}: malformed ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise GuardError(f"refused URL {shown}: only http and https URLs are allowed")
    if "@" in parts.netloc:
        raise GuardError(f"refused URL {shown}: credentials (user@host) are not allowed in URLs")
    if not raw_host:
        raise GuardError(f"refused URL {shown}: no host")
    host = _normalise_host(raw_host, shown)
    if allow_private:
        return url
    ip = _parse_ip_literal(host)
    if ip is not None:
        why = classify_address(ip)
        if why is not None:
            spelled = "is" if str(ip) == host else f"means {ip},"
            raise GuardError(
                f"refused URL {shown}: host {raw_host} {spelled} {why}; "
                "only public http(s) URLs are allowed"
            )
        return url
    if host in _BLOCKED_NAMES or host.endswith(_BLOCKED_SUFFIXES) or "." not in host:
        raise GuardError(
            f"refused URL {shown}: host {host!r} is a local or internal name; "
            "only public http(s) URLs are allowed"
        )
    resolve = resolver or _system_resolver
    try:
        addresses = list(resolve(host, port or (443 if scheme == "https" else 80)))
    except Exception as exc:  # gaierror offline, a sandbox's blocked socket, a bad name...
        raise GuardError(
            f"refused URL {shown}: could not resolve host {host!r} to check it is public "
            f"({type(exc).__name__})"
        ) from None
    if not addresses:
        raise GuardError(f"refused URL {shown}: host {host!r} has no addresses")
    for address in addresses:
        try:
            resolved = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            raise GuardError(
                f"refused URL {shown}: host {host!r} resolved to an unreadable address"
            ) from None
        why = classify_address(resolved)
        if why is not None:
            raise GuardError(
                f"refused URL {shown}: host {host!r} resolves to {resolved}, {why}; "
                "only public http(s) URLs are allowed"
            )
    return url


def _resolved_dirs(allowed_dirs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    return [Path(os.path.realpath(os.fspath(d))) for d in allowed_dirs]


def _inside(path: Path, directory: Path) -> bool:
    try:
        path.relative_to(directory)
    except ValueError:
        return False
    return True


def _candidates(raw: str, dirs: list[Path]) -> list[Path]:
    given = Path(raw)
    if given.is_absolute():
        return [given]
    return [d / given for d in dirs]


def read_allowed_file(
    path: str | os.PathLike[str],
    allowed_dirs: Sequence[str | os.PathLike[str]] | None,
    *,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> AllowedFile:
    """Read ``path`` if it is a regular file inside one of ``allowed_dirs``.

    A relative ``path`` is looked up in each allowed directory in turn. Symlinks and
    ``..`` are resolved before the check; the resolved file is opened (without
    following a symlink swapped in meanwhile, where the OS allows) and must be the
    file that was checked. Files larger than ``max_bytes`` are refused.

    >>> read_allowed_file("/etc/passwd", ["/srv/images"])
    Traceback (most recent call last):
    ...
    siliconvision.guards.GuardError: refused path /etc/passwd: it is outside the allowed \
directories (/srv/images)
    """
    raw = os.fspath(path) if isinstance(path, os.PathLike) else path
    if not isinstance(raw, str) or not raw.strip():
        raise GuardError("refused path: expected a non-empty file path")
    shown = raw if len(raw) <= 120 else "…" + raw[-119:]
    if "\x00" in raw:
        raise GuardError("refused path: it contains a NUL character")
    if not allowed_dirs:
        raise GuardError(
            f"refused path {shown}: reading local files is disabled "
            "(no allowed directories are configured); use an http(s) URL"
        )
    dirs = _resolved_dirs(allowed_dirs)
    listed = ", ".join(str(d) for d in dirs)
    inside_but_missing: Path | None = None
    for candidate in _candidates(raw, dirs):
        real = Path(os.path.realpath(candidate))
        if not any(_inside(real, d) for d in dirs):
            continue
        try:
            info = os.stat(real)
        except OSError:
            inside_but_missing = real
            continue
        if not stat.S_ISREG(info.st_mode):
            raise GuardError(f"refused path {shown}: it is not a regular file")
        if info.st_size > max_bytes:
            raise GuardError(
                f"refused path {shown}: {info.st_size:,} bytes is more than the "
                f"{max_bytes:,}-byte limit"
            )
        return AllowedFile(real, _read_checked(real, info, shown, max_bytes))
    if inside_but_missing is not None:
        raise GuardError(f"refused path {shown}: no such file in the allowed directories")
    raise GuardError(f"refused path {shown}: it is outside the allowed directories ({listed})")


def _read_checked(real: Path, info: os.stat_result, shown: str, max_bytes: int) -> bytes:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    flags |= getattr(os, "O_NONBLOCK", 0)  # never block on a FIFO swapped in meanwhile
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        raise GuardError(f"refused path {shown}: cannot open it ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as file:
        opened = os.fstat(file.fileno())
        if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino) or not stat.S_ISREG(
            opened.st_mode
        ):
            raise GuardError(f"refused path {shown}: the file changed while it was checked")
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise GuardError(f"refused path {shown}: it is more than the {max_bytes:,}-byte limit")
    return data


def check_image_argument(
    value: Any,
    *,
    allowed_dirs: Sequence[str | os.PathLike[str]] | None = None,
    allow_private_urls: bool = False,
    resolver: Resolver | None = None,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> str | AllowedFile:
    """Check one untrusted image argument: an http(s) URL (returned as is) or a local
    path (returned read, as :class:`AllowedFile`). Other URL schemes, data URIs and
    non-strings raise :class:`GuardError`.

    >>> check_image_argument("data:image/png;base64,AAAA")
    Traceback (most recent call last):
    ...
    siliconvision.guards.GuardError: refused image 'data:image/png;base64,AAAA': give a local \
file path or an http(s) URL
    """
    if not isinstance(value, str):
        raise GuardError(f"refused image: expected a string, got {type(value).__name__}")
    text = value.strip()
    scheme = urllib.parse.urlsplit(text).scheme.lower() if ":" in text else ""
    if scheme in ("http", "https"):
        return check_image_url(text, allow_private=allow_private_urls, resolver=resolver)
    if scheme and len(scheme) > 1:  # "C:\..." is a Windows drive, not a scheme
        shown = text if len(text) <= 60 else text[:59] + "…"
        raise GuardError(f"refused image {shown!r}: give a local file path or an http(s) URL")
    return read_allowed_file(text, allowed_dirs, max_bytes=max_bytes)
