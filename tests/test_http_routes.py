"""``UrlPolicy.routes``: a stable origin dialled at another address, checked by the name in the URL."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scrapers.http import HttpConfigError, PoliteClient, UrlPolicy, UrlRefused


@contextlib.contextmanager
def _server() -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b"User-agent: *\nAllow: /\n" if self.path == "/robots.txt" else self.headers["Host"].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_routed_origin_reaches_the_local_server_and_keeps_its_name() -> None:
    with _server() as port:
        policy = UrlPolicy(allowed_hosts=["site.example.invalid:80"], private_hosts=["site.example.invalid:80"],
                           routes={"site.example.invalid:80": f"127.0.0.1:{port}"})
        with PoliteClient(rate_limit_per_s=1000, policy=policy) as client:
            response = client.get("http://site.example.invalid/page")
        assert response.content == b"site.example.invalid"  # the Host header names the origin, not the port


def test_a_route_does_not_opt_its_target_in() -> None:
    """Routing a name to loopback without opting that name in is refused like any loopback address."""
    with _server() as port:
        policy = UrlPolicy(routes={"site.example.invalid:80": f"127.0.0.1:{port}"})
        with PoliteClient(rate_limit_per_s=1000, policy=policy, max_retries=0) as client, pytest.raises(UrlRefused):
            client.get("http://site.example.invalid/page")


def test_route_entries_need_a_port() -> None:
    with pytest.raises(HttpConfigError, match="expected host:port"):
        UrlPolicy(routes={"site.example.invalid": "127.0.0.1:1"})
