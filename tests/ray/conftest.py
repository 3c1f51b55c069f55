"""One local Ray for every Ray test: 2 CPUs, everything on 127.0.0.1.

Ray on these machines must keep every socket on loopback:

- ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` and ``RAY_USAGE_STATS_ENABLED=0`` are set by
  ``tests/conftest.py`` before Ray is imported (the node then runs on 127.0.0.1);
- Ray's own processes (GCS, raylet, dashboard, workers) start with ``HTTP_PROXY`` and
  ``HTTPS_PROXY`` pointing at a dead loopback port and ``NO_PROXY`` for loopback: at
  start-up the dashboard probes the cloud metadata address 169.254.169.254 even with
  usage stats off, and that traffic must never leave a test. The variables are set
  only while ``ray.init`` starts those processes (they inherit them), then restored;
- the fixture asserts that the node address is 127.0.0.1.

Actors ask for a fraction of a CPU (``caption_dataset``'s ``num_cpus`` default 0.25 and
the limiter's 0.05): actors holding whole CPUs would starve the read tasks and hang.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from siliconvision.testing import LocalSiliconCloud

QWEN = "Qwen/Qwen2.5-VL-72B-Instruct"
DEAD_PROXY_PORT_HOST = "127.0.0.1"
LOOPBACK = "127.0.0.1,localhost,::1"
# Fast retries: the tests count attempts, they do not wait for real backoffs.
FAST = {"max_retries": 0, "retry_initial_delay": 0.01, "retry_max_delay": 0.02}


def _dead_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((DEAD_PROXY_PORT_HOST, 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def ray_local() -> Iterator[Any]:
    import ray
    from ray._private import ray_constants

    assert os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0"
    assert not ray_constants.ENABLE_RAY_CLUSTER  # read when Ray was imported
    proxy = f"http://{DEAD_PROXY_PORT_HOST}:{_dead_port()}"
    names = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(
        HTTP_PROXY=proxy, HTTPS_PROXY=proxy, http_proxy=proxy, https_proxy=proxy,
        NO_PROXY=LOOPBACK, no_proxy=LOOPBACK,
    )  # fmt: skip
    try:
        context = ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="WARNING",
        )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    try:
        assert ray.util.get_node_ip_address() == "127.0.0.1"
        assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
        assert context.address_info["node_ip_address"] == "127.0.0.1"
        data_context = ray.data.DataContext.get_current()
        data_context.enable_progress_bars = False
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture
def emu() -> Iterator[LocalSiliconCloud]:
    with LocalSiliconCloud() as emulator:
        yield emulator


def make_pngs(directory: Path, count: int, *, start: int = 0) -> list[Path]:
    """``count`` PNGs of distinct widths (``40 + i`` x 30), so captions tell them apart."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        path = directory / f"img_{i:03d}.png"
        Image.new("RGB", (40 + i, 30), ((37 * i) % 256, 200, 90)).save(path)
        paths.append(path)
    return paths


def width_in(caption: str) -> int:
    """The width the emulator saw: ``Image 1: WxH PNG ...``."""
    return int(caption.split("Image 1: ", 1)[1].split("x", 1)[0])
