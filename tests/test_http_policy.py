"""The HTTP client's URL policy, per-exchange deadline and per-host crawl delay: loopback servers (the "internal"
ones must receive nothing) and a mock transport with a fake clock. Every test is bounded in time."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from scrapers.http import (
    DeadlineExceeded,
    HttpConfigError,
    PoliteClient,
    RobotsDisallowed,
    UrlPolicy,
    UrlRefused,
    address_problem,
    host_entry,
    origin_entry,
)

# -- loopback servers (also used by test_pet911_crawl_faults.py) ---------------------------------------------------

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Loopback:
    base: str
    netloc: str
    port: int
    requests: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)


@contextlib.contextmanager
def loopback(respond: Callable[[str, BaseHTTPRequestHandler, Loopback], Reply | None]) -> Iterator[Loopback]:
    """An HTTP/1.1 server on 127.0.0.1 (ephemeral port). ``respond(path, handler, server)`` returns
    (status, headers, body), or None after writing the answer itself. Every request path is recorded."""
    state: dict[str, Loopback] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            server = state["server"]
            server.requests.append(self.path)
            reply = respond(self.path, self, server)
            if reply is None:
                self.close_connection = True
                return
            status, headers, body = reply
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    port = httpd.server_address[1]
    state["server"] = Loopback(f"http://127.0.0.1:{port}", f"127.0.0.1:{port}", port)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["server"]
    finally:
        state["server"].stop.set()
        httpd.shutdown()
        httpd.server_close()


def internal_server() -> contextlib.AbstractContextManager[Loopback]:
    """The "internal service" a redirect tries to reach: answers a secret to anyone who asks (nobody must)."""
    return loopback(lambda path, handler, server: (200, {"Content-Type": "image/jpeg"},
                                                   b"\xff\xd8\xff INTERNAL SECRET"))


def drip(handler: BaseHTTPRequestHandler, server: Loopback, head: bytes, every_s: float = 0.1,
         slow_head: bool = False) -> None:
    """Answer one byte at a time: the head at once (or dripped too, ``slow_head``), then the body forever."""
    try:
        if not slow_head:
            handler.wfile.write(head)
        for byte in (head if slow_head else b"") + b"x" * 10_000:
            if server.stop.wait(every_s):
                return
            handler.wfile.write(bytes([byte]))
    except OSError:
        return  # the client hung up


def run_bounded(function: Callable[[], object], limit_s: float) -> object:
    """Run ``function`` in a daemon thread; fail (instead of hanging the suite) when it takes over ``limit_s``."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = function()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit_s)
    assert not thread.is_alive(), f"still running after {limit_s} s"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


def loopback_client(*servers: Loopback, **kwargs) -> PoliteClient:
    """A fast client that trusts exactly these servers' host:port (nothing else on loopback)."""
    kwargs.setdefault("policy", UrlPolicy(private_hosts=[s.netloc for s in servers]))
    settings = dict(rate_limit_per_s=500.0, jitter=0.0, max_retries=0, timeout_s=5.0, connect_timeout_s=2.0)
    settings.update(kwargs)
    return PoliteClient(**settings)


# -- redirects: every hop passes the same policy --------------------------------------------------------------------


def test_redirect_to_another_loopback_port_is_refused_and_never_sent() -> None:
    with internal_server() as internal:
        targets = {"/to-internal": f"{internal.base}/secret", "/to-localhost": f"http://localhost:{internal.port}/s",
                   "/to-v6": f"http://[::1]:{internal.port}/s", "/to-any": f"http://0.0.0.0:{internal.port}/s",
                   "/to-mapped": f"http://[::ffff:127.0.0.1]:{internal.port}/s", "/to-file": "file:///etc/passwd",
                   "/to-metadata": "http://169.254.169.254/latest/meta-data/", "/to-self": "/ok"}

        def site(path: str, handler: BaseHTTPRequestHandler, server: Loopback) -> Reply:
            if path in targets:
                return 302, {"Location": targets[path]}, b""
            if path == "/robots.txt":
                return 404, {}, b""
            return 200, {"Content-Type": "text/plain"}, b"fine"

        with loopback(site) as site_server, loopback_client(site_server) as client:
            assert client.get(f"{site_server.base}/to-self").content == b"fine"  # same host:port: followed
            for path in sorted(set(targets) - {"/to-self"}):
                with pytest.raises(UrlRefused, match="redirect to .* refused") as info:
                    client.get(f"{site_server.base}{path}")
                assert info.value.url == f"{site_server.base}{path}"
        assert internal.requests == []


def test_host_allow_list_checks_the_port() -> None:
    with internal_server() as internal:
        def site(path: str, handler: BaseHTTPRequestHandler, server: Loopback) -> Reply:
            if path == "/robots.txt":
                return 404, {}, b""
            return 302, {"Location": f"{internal.base}/photo.jpg"}, b""

        with loopback(site) as site_server:
            # both servers may be private, but only the site's port is on the allow-list
            policy = UrlPolicy(allowed_hosts=[site_server.netloc],
                               private_hosts=[site_server.netloc, internal.netloc])
            with loopback_client(policy=policy) as client:
                with pytest.raises(UrlRefused, match=r"not in the allowed hosts"):
                    client.get(f"{site_server.base}/photo.jpg")
        assert internal.requests == []


def test_hostname_resolving_to_loopback_is_refused_before_and_at_connect() -> None:
    with internal_server() as internal:
        with loopback_client(policy=UrlPolicy(resolver=lambda host, port: ["127.0.0.1"]), obey_robots=False) as c:
            with pytest.raises(UrlRefused, match="loopback"):
                c.get(f"http://internal.test:{internal.port}/")
        # DNS rebinding: public when checked, loopback when the socket connects — the connect-time check refuses
        answers = iter([["93.184.216.34"]])
        policy = UrlPolicy(resolver=lambda host, port: next(answers, ["127.0.0.1"]))
        with loopback_client(policy=policy, obey_robots=False) as client:
            with pytest.raises(UrlRefused, match="loopback"):
                client.get(f"http://rebind.test:{internal.port}/")
    assert internal.requests == []


# -- the policy itself (no sockets) ----------------------------------------------------------------------------------

RESOLVER = {"a.example": ["93.184.216.34"], "internal.example": ["10.1.2.3"],
            "mixed.example": ["93.184.216.34", "127.0.0.1"], "meta.example": ["169.254.169.254"],
            "v6.example": ["2606:2800:220:1::1"], "ula.example": ["fd00::1"]}


def fake_resolver(host: str, port: int) -> list[str]:
    if host not in RESOLVER:
        raise OSError(f"unknown host {host}")
    return RESOLVER[host]


def test_policy_checks_scheme_host_port_and_every_resolved_address() -> None:
    policy = UrlPolicy(resolver=fake_resolver)
    for url in ("http://a.example/x", "https://a.example:8443/x", "https://v6.example/", "http://93.184.216.34/"):
        policy.check(url)
    for url, reason in [("ftp://a.example/x", "scheme"), ("file:///etc/passwd", "no host"),
                        ("http://internal.example/", "private"), ("http://mixed.example/", "loopback"),
                        ("http://meta.example/", "link-local"), ("http://ula.example/", "private"),
                        ("http://127.0.0.1:8080/", "loopback"), ("http://[::1]/", "loopback"),
                        ("http://0.0.0.0/", "unspecified"), ("http://224.0.0.1/", "multicast"),
                        ("http://100.64.0.1/", "non-global"), ("http://a.example:99999/", "malformed"),
                        ("http://[bad/", "malformed")]:
        with pytest.raises(UrlRefused, match=reason):
            policy.check(url)
    listed = UrlPolicy(allowed_hosts=["a.example", "127.0.0.1:8080"], private_hosts=["127.0.0.1:8080"],
                       resolver=fake_resolver)
    listed.check("http://a.example/x") or listed.check("https://a.example/x") or listed.check("http://127.0.0.1:8080/")
    for url in ("https://a.example:8443/x", "http://a.example:443/x", "http://127.0.0.1:8081/", "http://127.0.0.1/"):
        with pytest.raises(UrlRefused, match="not in the allowed hosts"):
            listed.check(url)
    assert UrlPolicy(allow_private_addresses=True).check("http://10.0.0.1/") is None


def test_host_entries_and_address_classes() -> None:
    assert host_entry("pet911.ru") == ("pet911.ru", None) and host_entry("Cdn.Pet911.ru:8080") == ("cdn.pet911.ru", 8080)
    assert host_entry("[::1]:81") == ("::1", 81) and host_entry("http://127.0.0.1") == ("127.0.0.1", 80)
    assert origin_entry("https://pet911.ru/catalog") == "pet911.ru:443" and origin_entry("http://[::1]:5/") == "[::1]:5"
    for bad in ("", "a.example:99999", "a.example/path", "user@a.example"):
        with pytest.raises(HttpConfigError):
            host_entry(bad)
    with pytest.raises(HttpConfigError, match="not one string"):
        UrlPolicy(allowed_hosts="pet911.ru")
    assert address_problem("8.8.8.8") is None and address_problem("::ffff:10.0.0.1") == "private"
    assert address_problem("192.168.1.1") == "private" and address_problem("fe80::1") == "link-local"


def test_invalid_client_settings_are_user_errors() -> None:
    for kwargs in ({"rate_limit_per_s": 0}, {"rate_limit_per_s": -1}, {"rate_limit_per_s": float("nan")},
                   {"rate_limit_per_s": "fast"}, {"deadline_s": 0}, {"max_crawl_delay_s": -1}):
        with pytest.raises(HttpConfigError):
            PoliteClient(**kwargs)


# -- the per-exchange deadline ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("slow_head", [False, True], ids=["dripping-body", "dripping-headers"])
def test_a_dripping_server_is_cut_off_at_the_deadline(slow_head: bool) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n"
    with loopback(lambda path, handler, server: drip(handler, server, head, 0.05, slow_head)) as server:
        with loopback_client(server, deadline_s=0.6, timeout_s=5.0, obey_robots=False) as client:
            start = time.monotonic()
            with pytest.raises(DeadlineExceeded, match="0.6 s deadline"):
                run_bounded(lambda: client.get(f"{server.base}/slow"), 10)
            elapsed = time.monotonic() - start
    assert 0.5 <= elapsed < 2.0 and len(server.requests) == 1  # cut off at the deadline, and not retried


def test_a_slow_but_timely_answer_is_within_the_deadline() -> None:
    def slow(path: str, handler: BaseHTTPRequestHandler, server: Loopback) -> Reply:
        time.sleep(0.2)
        return 200, {"Content-Type": "text/plain"}, b"late but fine"

    with loopback(slow) as server, loopback_client(server, deadline_s=3.0, obey_robots=False) as client:
        assert client.get(f"{server.base}/x").content == b"late but fine"


# -- robots.txt Crawl-delay: capped and per host ---------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize("cap", [60.0, 5.0])
def test_crawl_delay_is_capped_and_scoped_to_its_host(cap: float) -> None:
    clock, times = FakeClock(), {"slow.example": [], "fast.example": []}

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/robots.txt":
            delay = "Crawl-delay: 86400\n" if request.url.host == "slow.example" else ""
            return httpx.Response(200, text=f"User-agent: *\n{delay}Disallow: /private/\n")
        times[request.url.host].append(clock.now)
        return httpx.Response(200, text="ok")

    policy = UrlPolicy(resolver=lambda host, port: ["93.184.216.34"])
    kwargs = {} if cap == 60.0 else {"max_crawl_delay_s": cap}
    with PoliteClient(clock=clock, sleep=clock.sleep, transport=httpx.MockTransport(route), rate_limit_per_s=2.0,
                      jitter=0.0, policy=policy, **kwargs) as client:
        for host in ("slow", "fast"):
            for _ in range(3):
                client.get(f"https://{host}.example/x")
        assert client.host_interval("https://slow.example/") == cap
        assert client.robots_crawl_delay("https://slow.example/") == 86400
        assert client.host_interval("https://fast.example/") == 0.5
        assert client.robots_crawl_delay("https://fast.example/") is None
        with pytest.raises(RobotsDisallowed):
            client.get("https://slow.example/private/x")
    slow, fast = times["slow.example"], times["fast.example"]
    assert [round(b - a, 6) for a, b in zip(slow, slow[1:])] == [cap, cap]
    assert [round(b - a, 6) for a, b in zip(fast, fast[1:])] == [0.5, 0.5]  # the other host is not slowed down
