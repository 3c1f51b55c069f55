"""The one policy for local files and URLs, used by every entry point.

Untrusted strings reach us in two ways: the arguments of an image tool (an agent's
model picks them, and prompt injection can put any string there) and the ``url`` of
an image or video in message content (chat UIs, agents and endpoints forward what
users wrote). These guards are framework-neutral: the core's messages, the client,
both chat models, both tools, the loaders and the CLI use them.

- :func:`message_url_source`: a message ``url`` is sent as it is only when it is an
  http(s) URL or a ``data:`` URI; a local path or ``file:`` URL is read only inside
  the ``allowed_dirs`` the program opted in with.
- :func:`read_local_file` / :func:`check_local_file` / :func:`read_checked_file`: every
  file we read, including the ones the program named itself, is a regular file
  (no FIFO, device, ``/proc``, ``/sys``), checked with ``stat`` against a size cap
  before it is opened, and nothing past the checked size is read.
- :func:`fetch_url`: client-side fetching (``fetch_urls=True``) checks the URL and
  every redirect hop with :func:`check_image_url`, and the address of every
  connection it makes.

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

import functools
import ipaddress
import os
import socket
import stat
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http.client import HTTPMessage
from pathlib import Path
from typing import IO, Any, Final, TypeAlias

from .errors import ImageInputError, SiliconVisionError

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "AllowedFile",
    "GuardError",
    "LocalFileError",
    "Resolver",
    "UrlCheck",
    "check_image_argument",
    "check_image_url",
    "check_local_file",
    "classify_address",
    "fetch_url",
    "message_url_source",
    "read_allowed_file",
    "read_checked_file",
    "read_local_file",
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


class GuardError(ImageInputError):
    """An untrusted image argument was refused; the message says why (safe to show).

    An :class:`~siliconvision.errors.ImageInputError` (so a ``ValueError``): code that
    catches bad images catches refusals too.

    >>> str(GuardError("refused path x: outside the allowed directories"))
    'refused path x: outside the allowed directories'
    """

    def __init__(self, message: str) -> None:
        self.source = ""
        self.reason = message
        self.kind = "image"
        Exception.__init__(self, message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason,))


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


# --------------------------------------------------------------------------- local files


class LocalFileError(SiliconVisionError, ValueError):
    """A local file that must not be read; ``reason`` says why (no path in it).

    Raised by :func:`check_local_file` and :func:`read_checked_file`; callers add the
    name of the file to their own message (``ImageInputError``, :class:`GuardError`).

    >>> str(LocalFileError("it is not a regular file (a FIFO)"))
    'it is not a regular file (a FIFO)'
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


# System state dressed up as files (``/proc/self/environ`` reads as a 0-byte regular
# file, ``/sys`` files as 4096-byte ones) and device nodes: never image data.
_PSEUDO_ROOTS: Final = ("/proc", "/sys", "/dev") if os.name == "posix" else ()


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a special file"


def _pseudo_root(real: str) -> str | None:
    for root in _PSEUDO_ROOTS:
        if real == root or real.startswith(root + "/"):
            return root
    return None


def check_local_file(real: str, info: os.stat_result, *, max_bytes: int) -> None:
    """Raise :class:`LocalFileError` unless ``real`` (a resolved path whose ``os.stat``
    is ``info``) may be read: a regular file, outside ``/proc``, ``/sys`` and ``/dev``,
    not empty and at most ``max_bytes`` long. Nothing is opened.

    >>> info = os.stat("/dev/zero")  # doctest: +SKIP
    >>> check_local_file("/dev/zero", info, max_bytes=1024)  # doctest: +SKIP
    Traceback (most recent call last):
    ...
    siliconvision.guards.LocalFileError: it is in /dev (system state, not a file)
    """
    root = _pseudo_root(real)
    if root is not None:
        raise LocalFileError(f"it is in {root} (system state, not a file)")
    if not stat.S_ISREG(info.st_mode):
        raise LocalFileError(f"it is not a regular file ({_kind(info.st_mode)})")
    if info.st_size == 0:
        raise LocalFileError("empty (0 bytes)")
    if info.st_size > max_bytes:
        raise LocalFileError(
            f"{info.st_size:,} bytes is more than the {max_bytes:,}-byte limit (max_file_bytes)"
        )


def read_checked_file(real: str, info: os.stat_result, *, head: int | None = None) -> bytes:
    """The bytes of ``real``, a file :func:`check_local_file` accepted with ``info``.

    The file opened must be the one that was checked (same device and inode, still a
    regular file; symlinks are not followed where the OS allows), it is opened without
    blocking (a FIFO swapped in meanwhile cannot hang the caller), and at most
    ``info.st_size`` bytes are read: nothing past the size that was checked. A file
    that changed size while it was read is refused. ``head``: only its first ``head``
    bytes (to tell its format). Raises :class:`LocalFileError`.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    flags |= getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(real, flags)
    except PermissionError:
        raise LocalFileError("unreadable (permission denied)") from None
    except OSError as exc:
        raise LocalFileError(f"cannot open it ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as file:
        opened = os.fstat(file.fileno())
        if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino) or not stat.S_ISREG(
            opened.st_mode
        ):
            raise LocalFileError("the file changed while it was checked")
        try:
            data = file.read(info.st_size if head is None else min(head, info.st_size))
        except OSError as exc:
            raise LocalFileError(f"unreadable: {exc.strerror or exc}") from None
        if head is not None:
            return data
        if len(data) != info.st_size or os.fstat(file.fileno()).st_size != info.st_size:
            raise LocalFileError("the file changed size while it was read")
    return data


def read_local_file(
    path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> AllowedFile:
    """Read a file the program chose itself (no directory restriction): a regular file,
    at most ``max_bytes``, checked with ``stat`` before it is opened
    (:func:`check_local_file`, :func:`read_checked_file`). Raises :class:`LocalFileError`
    (``FileNotFoundError`` when it does not exist).

    >>> read_local_file("/dev/zero")  # doctest: +SKIP
    Traceback (most recent call last):
    ...
    siliconvision.guards.LocalFileError: it is in /dev (system state, not a file)
    """
    real = os.path.realpath(os.fspath(path))
    info = os.stat(real)
    check_local_file(real, info, max_bytes=max_bytes)
    return AllowedFile(Path(real), read_checked_file(real, info))


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
    ``..`` are resolved before the check; the resolved file must pass
    :func:`check_local_file` (a regular file outside ``/proc``/``/sys``/``/dev``, at most
    ``max_bytes``, checked with ``stat`` before it is opened), and the file opened must
    be the one that was checked (:func:`read_checked_file`).

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
        try:
            check_local_file(str(real), info, max_bytes=max_bytes)
            return AllowedFile(real, read_checked_file(str(real), info))
        except LocalFileError as exc:
            raise GuardError(f"refused path {shown}: {exc.reason}") from None
    if inside_but_missing is not None:
        raise GuardError(f"refused path {shown}: no such file in the allowed directories")
    raise GuardError(f"refused path {shown}: it is outside the allowed directories ({listed})")


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
    scheme = _scheme(text)
    if scheme in ("http", "https"):
        return check_image_url(text, allow_private=allow_private_urls, resolver=resolver)
    if scheme:
        shown = text if len(text) <= 60 else text[:59] + "…"
        raise GuardError(f"refused image {shown!r}: give a local file path or an http(s) URL")
    return read_allowed_file(text, allowed_dirs, max_bytes=max_bytes)


def _scheme(text: str) -> str:
    """The URL scheme of ``text`` (lower case), ``""`` for a path ("C:\\..." is a drive)."""
    if ":" not in text:
        return ""
    try:
        scheme = urllib.parse.urlsplit(text).scheme.lower()
    except ValueError:
        return ""
    return scheme if len(scheme) > 1 else ""


# --------------------------------------------------------------------------- message urls


_OPT_IN = (
    "local files named in message content are read only when the program allows it: "
    "pass allowed_dirs=[...] to SiliconVisionClient, ChatSiliconVision or SiliconVision, "
    "or give the file itself with image_block(path) (LangChain), ImageBlock(path=...) "
    "(LlamaIndex) or Image(Path(...)) (core)"
)


def _file_url_path(url: str, shown: str, field: str, kind: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ImageInputError(
            shown,
            f"{field} is a file: URL on another host ({parts.netloc}); only local files "
            "can be read",
            kind=kind,
        )
    return urllib.request.url2pathname(urllib.parse.unquote(parts.path))


def message_url_source(
    url: str,
    *,
    field: str,
    allowed_dirs: Sequence[str | os.PathLike[str]] | None,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
    kind: str = "image",
    check_path: Callable[[str], object] | None = None,
) -> str | AllowedFile:
    """What an image or video ``url`` found in message content stands for.

    Message content is untrusted (chat UIs, agents and endpoints forward what users
    wrote), so only two forms are sent as they are: an http(s) URL and a ``data:`` URI
    (returned unchanged). A local path or a ``file:`` URL is read only when the program
    opted in with ``allowed_dirs``, through :func:`read_allowed_file` (returned as an
    :class:`AllowedFile`); any other scheme is refused. ``field`` names where the URL
    was (``"message 0, content item 1, image_url.url"``) in the error;
    ``check_path(path)``, if given, runs on the local path before it is looked up
    (raise to refuse it, e.g. a name that is not a video type).

    Raises :class:`~siliconvision.errors.ImageInputError` (a :class:`GuardError`, its
    subclass, for a path refused inside ``allowed_dirs``) before anything is opened.

    >>> message_url_source("https://example.com/a.png", field="url", allowed_dirs=None)
    'https://example.com/a.png'
    >>> message_url_source("photos/red.png", field="image_url.url", allowed_dirs=None)
    Traceback (most recent call last):
    ...
    siliconvision.errors.ImageInputError: image photos/red.png: image_url.url is a local \
path; local files named in message content are read only when the program allows it: pass \
allowed_dirs=[...] to SiliconVisionClient, ChatSiliconVision or SiliconVision, or give the \
file itself with image_block(path) (LangChain), ImageBlock(path=...) (LlamaIndex) or \
Image(Path(...)) (core)
    """
    if not isinstance(url, str):
        raise ImageInputError(f"<{type(url).__name__}>", f"{field} must be a string", kind=kind)
    head = url[:8].lower()
    if head.startswith(("http://", "https://", "data:")):
        return url
    shown = _shown(url) if "://" in url else (url if len(url) <= 120 else "…" + url[-119:])
    shown = "".join(c if c.isprintable() else "?" for c in shown)
    scheme = _scheme(url.strip())
    if scheme == "file":
        path = _file_url_path(url.strip(), shown, field, kind)
        what = "a file: URL"
    elif scheme:
        raise ImageInputError(
            shown,
            f"{field} has the scheme {scheme!r}; message content may hold http(s) URLs, "
            "data: URIs and (when the program allows it) local files",
            kind=kind,
        )
    else:
        path = url
        what = "a local path"
    if not allowed_dirs:
        raise ImageInputError(shown, f"{field} is {what}; {_OPT_IN}", kind=kind)
    if check_path is not None:
        check_path(path)
    try:
        return read_allowed_file(path, allowed_dirs, max_bytes=max_bytes)
    except GuardError as exc:
        raise GuardError(f"{kind} {shown}: {field}: {exc}") from None


# --------------------------------------------------------------------------- fetching

UrlCheck: TypeAlias = Callable[[str], object]
"""``url_check(url)``: raise to refuse fetching ``url`` (the first URL and every redirect)."""


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows only http(s) redirects, and runs ``url_check`` on every hop."""

    def __init__(self, url_check: UrlCheck | None) -> None:
        super().__init__()
        self._url_check = url_check

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if not newurl[:8].lower().startswith(("http://", "https://")):
            raise urllib.error.HTTPError(
                req.full_url, code, "redirect to a non-http(s) URL refused", headers, fp
            )
        if self._url_check is not None:
            try:
                self._url_check(newurl)
            except Exception as exc:
                raise urllib.error.HTTPError(
                    req.full_url, code, f"redirect refused: {exc}", headers, fp
                ) from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _PeerRefused(OSError):
    """A connection whose address the guard refused (raised inside ``connect``)."""


def _checked_connection(
    address: tuple[str, int], timeout: Any = None, source_address: Any = None
) -> socket.socket:
    """``socket.create_connection`` to the addresses the name resolves to *now*, each
    checked first: the address connected to is the address checked, so a name that
    changes its answer between the URL check and the connection (DNS rebinding)
    cannot reach an internal host."""
    host, port = address
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise _PeerRefused(f"could not resolve {host!r} ({type(exc).__name__})") from None
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        why = classify_address(ip)
        if why is not None:
            raise _PeerRefused(f"host {host!r} resolves to {ip}, {why}")
    last: OSError | None = None
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            if isinstance(timeout, (int, float)):
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last if last is not None else _PeerRefused(f"host {host!r} has no addresses")


class _PinnedHTTPHandler(urllib.request.HTTPHandler):
    def do_open(self, http_class: Any, req: urllib.request.Request, **kwargs: Any) -> Any:
        return super().do_open(_pinned(http_class), req, **kwargs)


class _PinnedHTTPSHandler(urllib.request.HTTPSHandler):
    def do_open(self, http_class: Any, req: urllib.request.Request, **kwargs: Any) -> Any:
        return super().do_open(_pinned(http_class), req, **kwargs)


def _pinned(http_class: Any) -> Callable[..., Any]:
    def connection(host: str, **kwargs: Any) -> Any:
        conn = http_class(host, **kwargs)
        conn._create_connection = _checked_connection
        return conn

    return connection


def fetch_url(
    url: str,
    *,
    label: str | None = None,
    allow_private: bool = False,
    resolver: Resolver | None = None,
    url_check: UrlCheck | None = None,
    timeout: float = 30.0,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> bytes:
    """GET an image URL client-side, through the SSRF guard; at most ``max_bytes``.

    The check (``url_check``, default :func:`check_image_url` with ``allow_private``
    and ``resolver``) runs on ``url`` and on every redirect hop; only http(s)
    redirects are followed. Unless ``allow_private``, every connection also checks the
    addresses it connects to, at connect time (no DNS-rebinding window), and goes
    direct (an ``HTTP(S)_PROXY`` would connect on our behalf to a host we never
    checked). Failures raise :class:`~siliconvision.errors.ImageInputError` naming
    ``label`` (default: the URL without its userinfo and query).

    >>> fetch_url("http://169.254.169.254/")
    Traceback (most recent call last):
    ...
    siliconvision.errors.ImageInputError: image http://169.254.169.254/: fetch refused: \
refused URL http://169.254.169.254/: host 169.254.169.254 is a link-local (cloud metadata) \
address; only public http(s) URLs are allowed
    """
    label = label if label is not None else _shown(url)
    check = url_check or functools.partial(
        check_image_url, allow_private=allow_private, resolver=resolver
    )
    try:
        check(url)
    except Exception as exc:
        raise ImageInputError(label, f"fetch refused: {exc}") from None
    handlers: list[urllib.request.BaseHandler] = [_CheckedRedirects(check)]
    if not allow_private:
        handlers += [urllib.request.ProxyHandler({}), _PinnedHTTPHandler(), _PinnedHTTPSHandler()]
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(
        url, headers={"User-Agent": "siliconvision", "Accept": "image/*"}
    )
    try:
        with opener.open(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise ImageInputError(
                    label,
                    f"response of {int(length):,} bytes exceeds max_fetch_bytes={max_bytes:,}",
                )
            data: bytes = response.read(max_bytes + 1)
    except ImageInputError:
        raise
    except urllib.error.HTTPError as exc:
        raise ImageInputError(label, f"fetch failed: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, _PeerRefused):
            raise ImageInputError(label, f"fetch refused: {reason}") from None
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise ImageInputError(label, f"fetch timed out after {timeout:g} s") from None
        raise ImageInputError(label, f"fetch failed: {reason}") from None
    except TimeoutError:
        raise ImageInputError(label, f"fetch timed out after {timeout:g} s") from None
    except Exception as exc:
        raise ImageInputError(label, f"fetch failed: {str(exc) or type(exc).__name__}") from None
    if len(data) > max_bytes:
        raise ImageInputError(label, f"response exceeds max_fetch_bytes={max_bytes:,} bytes")
    return data
