"""fetch_urls with a url_check: the check runs on the URL and on every redirect hop."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from siliconvision.errors import ImageInputError
from siliconvision.images import prepare_image
from tests.imaging import make_image

PNG = make_image(color="green")


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/hop":
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/img.png")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        self.wfile.write(PNG)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_check_sees_every_hop_and_can_refuse_a_redirect(server: str) -> None:
    seen: list[str] = []

    def allow_all(url: str) -> None:
        seen.append(url)

    image = prepare_image(
        f"{server}/hop", fetch_urls=True, allow_private_urls=True, url_check=allow_all, cache=None
    )
    assert image.mime_type == "image/png"
    assert seen == [f"{server}/hop", f"{server}/img.png"]

    def refuse_images(url: str) -> None:
        if url.endswith(".png"):
            raise ValueError("private target")

    with pytest.raises(ImageInputError, match="redirect refused: private target"):
        prepare_image(
            f"{server}/hop",
            fetch_urls=True,
            allow_private_urls=True,
            url_check=refuse_images,
            cache=None,
        )
    with pytest.raises(ImageInputError, match="fetch refused: private target"):
        prepare_image(
            f"{server}/img.png",
            fetch_urls=True,
            allow_private_urls=True,
            url_check=refuse_images,
            cache=None,
        )
