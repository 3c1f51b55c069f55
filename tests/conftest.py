"""Shared fixtures: every test runs offline against LocalSiliconCloud on 127.0.0.1.

The environment's SiliconCloud settings are removed for every test, so a
developer's real key can never make a test talk to the real service.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Ray keeps every socket on loopback only if these are set before it is imported (the
# node then runs on 127.0.0.1, not on the machine's interface address): here, before
# any test module or doctest imports it. See tests/ray/conftest.py for the rest.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
# No GPUs here: the future behaviour (leave CUDA_VISIBLE_DEVICES alone when a task asks
# for none), which Ray 2.55 (our floor) otherwise warns about at start-up.
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")

ENV_VARS = ("SILICONFLOW_API_KEY", "SILICONCLOUD_API_KEY", "SILICONFLOW_BASE_URL")


@pytest.fixture(autouse=True)
def _no_real_service(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def emulator() -> Iterator[object]:
    from siliconvision.testing import LocalSiliconCloud

    with LocalSiliconCloud() as emu:
        yield emu


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, tuple[int, int]]]]:
    """(format, size) of every pixel decode Pillow or libvips does in this thread (the
    in-process emulator decodes what it receives in its own threads). A libvips load
    is counted when it is asked for: it decodes the pixels it is then read for."""
    import threading

    from PIL import ImageFile

    seen: list[tuple[str, tuple[int, int]]] = []
    original = ImageFile.ImageFile.load
    thread = threading.get_ident()

    def load(self: ImageFile.ImageFile) -> object:
        if self.tile and threading.get_ident() == thread:
            seen.append((str(self.format), self.size))
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    try:
        import pyvips
    except (ImportError, OSError):
        pyvips = None
    if pyvips is not None:
        for fmt in ("jpeg", "png", "webp"):
            name = f"{fmt}load_source"
            vips_load = getattr(pyvips.Image, name)

            def counted(*args: object, _load: object = vips_load, _fmt: str = fmt, **kw: object):  # type: ignore[no-untyped-def]
                image = _load(*args, **kw)  # type: ignore[operator]
                if threading.get_ident() == thread:
                    seen.append((_fmt.upper(), (image.width, image.height)))
                return image

            monkeypatch.setattr(pyvips.Image, name, counted, raising=False)
    yield seen
