"""siliconvision.guards: untrusted image arguments (URLs and local paths) are checked.

No test needs DNS: IP literals and reserved names are decided without resolving, and
names are resolved through an injected resolver.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path

import pytest

from siliconvision.guards import (
    AllowedFile,
    GuardError,
    check_image_argument,
    check_image_url,
    classify_address,
    read_allowed_file,
)


def no_dns(host: str, port: int) -> Iterable[str]:
    raise AssertionError(f"must not resolve {host!r}")


def resolves_to(*addresses: str):  # type: ignore[no-untyped-def]
    calls: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return list(addresses)

    resolver.calls = calls  # type: ignore[attr-defined]
    return resolver


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.png",
        "http://2130706433/",  # decimal
        "http://0x7f000001/",  # hex
        "http://0x7f.0x0.0x0.0x1/",  # dotted hex
        "http://0177.0.0.1/",  # octal
        "http://017700000001/",  # octal, one number
        "http://127.1/",  # short form
        "http://127.0.0.1./",  # trailing dot
        "http://１２７.０.０.１/",  # full-width digits
        "http://0/",
        "http://0.0.0.0:8080/",
        "http://[::1]/",
        "http://[::]/",
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped IPv6
        "http://[::ffff:a9fe:a9fe]/",  # IPv4-mapped 169.254.169.254
        "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
        "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
        "http://[::127.0.0.1]/",  # IPv4-compatible
        "http://[fe80::1]/",
        "http://[fd00:ec2::254]/",  # AWS metadata over IPv6
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://100.100.100.200/latest/meta-data/",  # Alibaba Cloud metadata
        "http://10.0.0.5/",
        "http://172.16.3.4/",
        "http://192.168.1.1/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "HTTP://LOCALHOST/",
        "http://localhost./",
        "http://api.localhost/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://printer.local/",
        "http://intranet/",
    ],
)
def test_private_loopback_metadata_and_local_hosts_are_refused(url: str) -> None:
    with pytest.raises(GuardError, match="refused URL"):
        check_image_url(url, resolver=no_dns)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://good.example@127.0.0.1/", "credentials"),
        ("http://user:pw@images.example.com/", "credentials"),
        ("http://127.0.0.1\\@good.example/", "backslash"),
        ("http://%31%32%37.0.0.1/", "characters"),
        ("http://[fe80::1%25eth0]/", "characters"),
        ("http://images.example.com/a b.png", "whitespace"),
        ("http://images.example.com/\x00", "control"),
        ("file:///etc/passwd", "only http and https"),
        ("ftp://images.example.com/a.png", "only http and https"),
        ("gopher://127.0.0.1:6379/_INFO", "only http and https"),
        ("http:///a.png", "no host"),
        ("http://[::1/", "malformed"),
    ],
)
def test_tricky_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(GuardError, match=reason):
        check_image_url(url, resolver=no_dns)


def test_public_literals_pass_without_dns() -> None:
    for url in (
        "https://93.184.215.14/cat.png",
        "http://8.8.8.8:8080/a.png?x=1",
        "https://[2606:4700:4700::1111]/a.png",
        "http://[::ffff:8.8.8.8]/a.png",
    ):
        assert check_image_url(url, resolver=no_dns) == url


def test_names_are_refused_if_any_address_is_private() -> None:
    public = resolves_to("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c")
    assert check_image_url("https://images.example.com/a.png", resolver=public)
    assert public.calls == [("images.example.com", 443)]  # type: ignore[attr-defined]
    mixed = resolves_to("93.184.215.14", "10.1.2.3")
    with pytest.raises(GuardError, match=r"resolves to 10\.1\.2\.3, a private address"):
        check_image_url("http://rebind.example.com:8080/", resolver=mixed)
    assert mixed.calls == [("rebind.example.com", 8080)]  # type: ignore[attr-defined]
    with pytest.raises(GuardError, match="link-local"):
        check_image_url("http://x.example.com/", resolver=resolves_to("169.254.169.254"))
    with pytest.raises(GuardError, match="has no addresses"):
        check_image_url("http://x.example.com/", resolver=resolves_to())


def test_unresolvable_names_are_refused_with_a_clear_message() -> None:
    def offline(host: str, port: int) -> list[str]:
        raise OSError("Temporary failure in name resolution")

    with pytest.raises(GuardError, match=r"could not resolve host 'images\.example\.com'"):
        check_image_url("https://images.example.com/a.png", resolver=offline)

    def sandboxed(host: str, port: int) -> list[str]:
        raise RuntimeError("A test tried to use socket.getaddrinfo.")

    with pytest.raises(GuardError, match="RuntimeError"):
        check_image_url("https://images.example.com/a.png", resolver=sandboxed)


def test_unicode_names_are_checked_in_their_idna_form() -> None:
    resolver = resolves_to("93.184.215.14")
    check_image_url("https://bücher.example/a.png", resolver=resolver)
    assert resolver.calls == [("xn--bcher-kva.example", 443)]  # type: ignore[attr-defined]


def test_allow_private_skips_address_checks_only() -> None:
    assert check_image_url("http://127.0.0.1:9/a.png", allow_private=True)
    assert check_image_url("http://localhost/a.png", allow_private=True)
    with pytest.raises(GuardError, match="only http and https"):
        check_image_url("file:///etc/passwd", allow_private=True)
    with pytest.raises(GuardError, match="credentials"):
        check_image_url("http://a@127.0.0.1/", allow_private=True)


def test_refusal_messages_never_show_credentials() -> None:
    with pytest.raises(GuardError) as info:
        check_image_url("http://admin:hunter2@10.0.0.1/", resolver=no_dns)
    assert "hunter2" not in str(info.value) and "***@10.0.0.1" in str(info.value)


def test_classify_address() -> None:
    assert classify_address(ipaddress.ip_address("8.8.8.8")) is None
    assert classify_address(ipaddress.ip_address("127.9.9.9")) == "a loopback address"
    assert "192.168.0.1" in str(classify_address(ipaddress.ip_address("::ffff:192.168.0.1")))
    assert classify_address(ipaddress.ip_address("198.18.0.1")) == "a benchmarking address"


# --------------------------------------------------------------------------- files


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    allowed = tmp_path / "allowed"
    (allowed / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (allowed / "a.png").write_bytes(b"inside")
    (allowed / "sub" / "b.png").write_bytes(b"nested")
    (outside / "secret.txt").write_bytes(b"secret")
    return {"allowed": allowed, "outside": outside}


def test_files_inside_allowed_dirs_are_read(tree: dict[str, Path]) -> None:
    allowed = tree["allowed"]
    found = read_allowed_file(allowed / "a.png", [allowed])
    assert found == AllowedFile(allowed.resolve() / "a.png", b"inside")
    assert read_allowed_file("sub/b.png", [tree["outside"], allowed]).data == b"nested"
    assert read_allowed_file("sub/../a.png", [allowed]).data == b"inside"


def test_no_allowed_dirs_means_no_files(tree: dict[str, Path]) -> None:
    for dirs in (None, []):
        with pytest.raises(GuardError, match="reading local files is disabled"):
            read_allowed_file(tree["allowed"] / "a.png", dirs)


@pytest.mark.parametrize(
    "path",
    [
        "../outside/secret.txt",
        "sub/../../outside/secret.txt",
        "/etc/passwd",
        "~/.ssh/id_rsa",
    ],
)
def test_paths_escaping_the_allowed_dirs_are_refused(tree: dict[str, Path], path: str) -> None:
    with pytest.raises(GuardError, match=r"outside the allowed directories|no such file"):
        read_allowed_file(path, [tree["allowed"]])


def test_absolute_path_outside_is_refused(tree: dict[str, Path]) -> None:
    with pytest.raises(GuardError, match="outside the allowed directories"):
        read_allowed_file(tree["outside"] / "secret.txt", [tree["allowed"]])


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlinks_are_resolved_before_the_check(tree: dict[str, Path]) -> None:
    allowed = tree["allowed"]
    (allowed / "link.png").symlink_to(tree["outside"] / "secret.txt")
    (allowed / "dirlink").symlink_to(tree["outside"], target_is_directory=True)
    with pytest.raises(GuardError, match="outside the allowed directories"):
        read_allowed_file(allowed / "link.png", [allowed])
    with pytest.raises(GuardError, match="outside the allowed directories"):
        read_allowed_file("dirlink/secret.txt", [allowed])
    # A symlink that stays inside is fine: the real file is what counts.
    (allowed / "alias.png").symlink_to(allowed / "a.png")
    assert read_allowed_file("alias.png", [allowed]).path == allowed.resolve() / "a.png"


def test_non_files_and_big_files_are_refused(tree: dict[str, Path]) -> None:
    allowed = tree["allowed"]
    with pytest.raises(GuardError, match="not a regular file"):
        read_allowed_file(allowed / "sub", [allowed])
    with pytest.raises(GuardError, match="no such file"):
        read_allowed_file("missing.png", [allowed])
    with pytest.raises(GuardError, match="limit"):
        read_allowed_file("a.png", [allowed], max_bytes=3)
    with pytest.raises(GuardError, match="NUL"):
        read_allowed_file("a.png\x00.jpg", [allowed])
    if hasattr(os, "mkfifo"):
        os.mkfifo(allowed / "pipe.png")
        with pytest.raises(GuardError, match="not a regular file"):
            read_allowed_file("pipe.png", [allowed])


def test_check_image_argument_dispatches(tree: dict[str, Path]) -> None:
    allowed = tree["allowed"]
    assert check_image_argument("https://8.8.8.8/a.png") == "https://8.8.8.8/a.png"
    found = check_image_argument(" a.png ", allowed_dirs=[allowed])
    assert isinstance(found, AllowedFile) and found.data == b"inside"
    for bad in ("data:image/png;base64,AAAA", "file:///etc/passwd", "javascript:alert(1)"):
        with pytest.raises(GuardError):
            check_image_argument(bad, allowed_dirs=[allowed])
    with pytest.raises(GuardError, match="expected a string"):
        check_image_argument(42, allowed_dirs=[allowed])
    with pytest.raises(GuardError, match="loopback"):
        check_image_argument("http://127.0.0.1/a.png", allowed_dirs=[allowed])
