"""Ray Data: caption a folder of images into Parquet, then search the captions with LangChain.

    python examples/ray_caption.py [FOLDER] [--out DIR]

1. ``ray.data.read_binary_files`` reads the folder (``examples/images`` by default);
2. ``siliconvision.ray_data.caption_dataset`` captions every image on two Ray actors
   that share one rate limiter (a named actor holding the account's RPM and TPM), and
   the results go to Parquet under ``--out`` (a new ``run-*`` directory per run;
   rerunning resumes: images already captioned there are not sent again);
3. the captions are embedded (``SiliconVisionEmbeddings``, BAAI/bge-m3) into a LangChain
   ``InMemoryVectorStore``, and a question finds the best-matching image.

With SILICONFLOW_API_KEY (or SILICONCLOUD_API_KEY) set, this uses SiliconCloud; without
a key it runs offline against LocalSiliconCloud (which enforces the same limits, so the
limiter's work shows: 0 requests refused). Its "captions" describe size, format and
dominant colour, so ask about colours.

Ray runs locally (or on the cluster named by RAY_ADDRESS). A local Ray keeps every socket
on loopback: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 and RAY_USAGE_STATS_ENABLED=0 are set
before Ray is imported (the node runs on 127.0.0.1), and Ray's processes start with
HTTP(S)_PROXY pointing at a dead loopback port (its dashboard probes the cloud metadata
address at start-up), NO_PROXY for loopback.
"""

from __future__ import annotations

import argparse
import os
import socket
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

if not os.environ.get("RAY_ADDRESS"):  # before Ray is imported: a loopback-only node
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_siliconvision import SiliconVisionEmbeddings
from siliconvision import RateLimits
from siliconvision.client import resolve_api_key
from siliconvision.ray_data import caption_dataset
from siliconvision.testing import LocalSiliconCloud

MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
IMAGES = Path(__file__).parent / "images"
QUESTION = "a red circle"
# Set these to your account's limits for the model (see its page on SiliconCloud).
LIMITS = RateLimits(rpm=1000, tpm=80_000)
EXTENSIONS = ["png", "jpg", "jpeg", "webp"]


def start_local_ray() -> None:
    """``ray.init`` on 2 CPUs, its processes started with a dead loopback proxy."""
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    names = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy")
    saved = {name: os.environ.get(name) for name in names}
    loopback = "127.0.0.1,localhost,::1"
    os.environ.update(
        HTTP_PROXY=dead, HTTPS_PROXY=dead, http_proxy=dead, https_proxy=dead,
        NO_PROXY=loopback, no_proxy=loopback,
    )  # fmt: skip
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    finally:  # this process's own HTTP clients keep the caller's settings
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    address = ray.util.get_node_ip_address()
    if address != "127.0.0.1":
        raise RuntimeError(f"the local Ray node runs on {address}, not on 127.0.0.1")


def caption_folder(
    folder: Path, out: Path, *, api_key: str | None, base_url: str | None
) -> list[dict[str, Any]]:
    """Caption ``folder`` into a new run directory under ``out``; every row so far."""
    ray.data.DataContext.get_current().enable_progress_bars = False
    earlier = sorted(str(p) for p in out.glob("run-*") if p.is_dir())
    images = ray.data.read_binary_files(str(folder), include_paths=True, file_extensions=EXTENSIONS)
    captions = caption_dataset(
        images,
        model=MODEL,
        detail="low",
        rate_limits=LIMITS,
        concurrency=2,
        api_key=api_key,
        base_url=base_url,
        resume_from=earlier or None,
    )
    run = out / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    captions.write_parquet(str(run))  # (nothing is written when nothing was left to do)
    import pyarrow.dataset

    runs = [*earlier, str(run)] if run.exists() else earlier
    table = pyarrow.dataset.dataset(
        [pyarrow.dataset.dataset(p, format="parquet") for p in runs]
    ).to_table(columns=["path", "caption", "error", "attempts"])
    rows: list[dict[str, Any]] = table.to_pylist()
    new = pyarrow.dataset.dataset(str(run), format="parquet").count_rows() if run.exists() else 0
    print(f"captioned {new} image(s) this run ({len(earlier)} earlier run(s) in {out})")
    return rows


def search(rows: list[dict[str, Any]], embeddings: SiliconVisionEmbeddings) -> str:
    """Index the captions (the latest good one per image) and find ``QUESTION``."""
    latest = {r["path"]: r for r in rows if r["error"] is None}
    for row in rows:
        if row["error"] is not None and row["path"] not in latest:
            print(f"failed {Path(row['path']).name}: {row['error']}")
    documents = [
        Document(page_content=r["caption"], metadata={"path": path}) for path, r in latest.items()
    ]
    for doc in documents:
        print(f"  {Path(doc.metadata['path']).name}: {doc.page_content.replace(chr(10), ' ')[:80]}")
    store = InMemoryVectorStore(embeddings)
    store.add_documents(documents)
    (best,) = store.similarity_search(QUESTION, k=1)
    name = Path(best.metadata["path"]).name
    print(f"\nbest match for {QUESTION!r}: {name}")
    return name


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("folder", nargs="?", type=Path, default=IMAGES)
    parser.add_argument("--out", type=Path, default=Path("ray_captions"))
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        if not ray.is_initialized():
            if os.environ.get("RAY_ADDRESS"):
                ray.init()
            else:
                start_local_ray()
            stack.callback(ray.shutdown)
        if resolve_api_key() is not None:
            print(f"Using SiliconCloud ({MODEL}, BAAI/bge-m3), within {LIMITS}.\n")
            rows = caption_folder(args.folder, args.out, api_key=None, base_url=None)
            embeddings = SiliconVisionEmbeddings()
            return search(rows, embeddings)
        print(
            "No SILICONFLOW_API_KEY set: using the local emulator (LocalSiliconCloud), "
            f"which enforces {LIMITS}.\nIts captions describe the images it received.\n"
        )
        emu = stack.enter_context(LocalSiliconCloud(rate_limits=LIMITS))
        rows = caption_folder(args.folder, args.out, api_key=emu.api_key, base_url=emu.base_url)
        stats = emu.rate_stats().get(MODEL)
        if stats is not None:
            print(
                f"emulator: {stats.accepted} accepted, {stats.refused} refused (429), at most "
                f"{stats.peak_requests} requests in one {stats.window:g} s window"
            )
        embeddings = SiliconVisionEmbeddings(api_key=emu.api_key, base_url=emu.base_url)
        return search(rows, embeddings)
    raise AssertionError("unreachable")  # pragma: no cover


if __name__ == "__main__":
    main()
