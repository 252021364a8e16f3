"""Fixtures shared by the whole suite."""

from __future__ import annotations

import http.server
import os
import socket
import threading
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

# No test may reach the network: wandb runs offline and syncs nothing.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# ...and nothing downloads implicitly (FID's Inception weights): offline paths are what we test.
os.environ.setdefault("CYCLEGAN_PL_OFFLINE", "1")

DATA_ENV = "CYCLEGAN_PL_DATA"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared real-image datasets, from $CYCLEGAN_PL_DATA; skips when it is not set."""
    value = os.environ.get(DATA_ENV)
    if not value:
        pytest.skip(
            f"needs the shared real images: set {DATA_ENV} to the shared datasets folder (CI sets ../shared/datasets)"
        )
    root = Path(value)
    if not root.is_dir():
        pytest.fail(f"{DATA_ENV}={value} is not a folder")
    return root


class _ServedFiles:
    """What the test server answers and what it was asked.

    Attributes:
        routes: URL path -> (body, how); how is ``ok`` (the body with its Content-Length),
            ``no_length`` (no Content-Length header) or ``dropped`` (Content-Length of the whole
            body, half of it, then the connection closes: a server stopping mid-way).
        requests: the URL paths asked for, in order.
        base: the server's URL, ``http://127.0.0.1:PORT``.
    """

    HOWS = ("ok", "no_length", "dropped")

    def __init__(self) -> None:
        self.routes: Dict[str, Tuple[bytes, str]] = {}
        self.requests: List[str] = []
        self.base = ""


def _file_handler(files: _ServedFiles):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            files.requests.append(self.path)
            if self.path not in files.routes:
                self.send_error(404)
                return
            body, how = files.routes[self.path]
            if how not in files.HOWS:  # a typo in a test would otherwise serve the body as "ok"
                self.send_error(500, f"unknown serving mode {how!r}; use one of {files.HOWS}")
                return
            self.send_response(200)
            if how != "no_length":
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if how == "dropped":
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture
def file_server() -> Iterator[_ServedFiles]:
    """An HTTP server on 127.0.0.1 (never the network) serving ``routes``; see :class:`_ServedFiles`."""
    files = _ServedFiles()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _file_handler(files))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    files.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield files
    httpd.shutdown()
    httpd.server_close()
