"""The polite HTTP client, with a mock transport and a fake clock (no real waiting, no network)."""

from __future__ import annotations

import httpx
import pytest

from scrapers.http import (
    DEFAULT_USER_AGENT,
    HttpStatusError,
    PoliteClient,
    RedirectLoop,
    ResponseTooLarge,
    RetriesExhausted,
    RobotsDisallowed,
    parse_retry_after,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make_client(handler, clock: FakeClock, **kwargs) -> PoliteClient:
    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/robots.txt":
            return httpx.Response(200, text="User-agent: *\nDisallow: /private/\n")
        return handler(request)

    kwargs.setdefault("jitter", 0.0)
    return PoliteClient(clock=clock, sleep=clock.sleep, transport=httpx.MockTransport(route), **kwargs)


def test_rate_limit_spaces_requests_per_host_and_sends_user_agent() -> None:
    clock, times, agents = FakeClock(), [], []

    def handler(request: httpx.Request) -> httpx.Response:
        times.append((request.url.host, clock.now))
        agents.append(request.headers["user-agent"])
        return httpx.Response(200, text="ok")

    with make_client(handler, clock, rate_limit_per_s=2.0) as client:
        for _ in range(3):
            client.get("https://a.example/x")
        client.get("https://b.example/x")
    a_times = [t for host, t in times if host == "a.example"]
    assert [round(b - a, 6) for a, b in zip(a_times, a_times[1:])] == [0.5, 0.5]
    assert "petid" in agents[0] and "https://" in agents[0] and agents[0] == DEFAULT_USER_AGENT


def test_jitter_only_lengthens_the_interval() -> None:
    clock, times = FakeClock(), []
    with make_client(lambda r: (times.append(clock.now), httpx.Response(200))[1], clock, rate_limit_per_s=1.0,
                     jitter=0.5) as client:
        for _ in range(6):
            client.get("https://a.example/x")
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(1.0 <= g <= 1.5 for g in gaps) and len(set(gaps)) > 1


def test_429_retry_after_is_honoured_and_5xx_backs_off_exponentially() -> None:
    clock, calls = FakeClock(), []
    script = [httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(503), httpx.Response(502),
              httpx.Response(200, text="done")]

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(clock.now)
        return script.pop(0)

    with make_client(handler, clock, rate_limit_per_s=100.0, backoff_base_s=1.0) as client:
        assert client.get("https://a.example/x").content == b"done"
    waits = [b - a for a, b in zip(calls, calls[1:])]
    assert waits[0] == pytest.approx(7.0, abs=0.02)
    assert 2.0 <= waits[1] <= 2.5 and 4.0 <= waits[2] <= 5.0  # attempt 1: 2 s, attempt 2: 4 s (+ ≤25% jitter)


def test_retries_exhausted_and_404_not_retried() -> None:
    clock, count = FakeClock(), {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        count["n"] += 1
        if request.url.path == "/gone":
            return httpx.Response(404)
        raise httpx.ConnectError("refused", request=request)

    with make_client(handler, clock, rate_limit_per_s=100.0, max_retries=2, backoff_base_s=0.1) as client:
        with pytest.raises(RetriesExhausted, match="gave up after 3 attempts.*ConnectError"):
            client.get("https://a.example/down")
        assert count["n"] == 3
        with pytest.raises(HttpStatusError) as info:
            client.get("https://a.example/gone")
        assert info.value.status == 404 and count["n"] == 4


def test_persistent_429_raises_status_error() -> None:
    clock = FakeClock()
    with make_client(lambda r: httpx.Response(429, headers={"Retry-After": "1"}), clock, rate_limit_per_s=100.0,
                     max_retries=1) as client:
        with pytest.raises(HttpStatusError, match="HTTP 429 after 2 attempts") as info:
            client.get("https://a.example/x")
    assert info.value.status == 429 and info.value.url == "https://a.example/x"


def test_redirects_followed_and_loops_detected() -> None:
    clock = FakeClock()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/old":
            return httpx.Response(301, headers={"Location": "/new"})
        if request.url.path == "/new":
            return httpx.Response(200, text="moved")
        if request.url.path == "/loop-a":
            return httpx.Response(302, headers={"Location": "/loop-b"})
        return httpx.Response(302, headers={"Location": "/loop-a"})

    with make_client(handler, clock, rate_limit_per_s=100.0) as client:
        response = client.get("https://a.example/old")
        assert response.url == "https://a.example/new" and response.content == b"moved"
        with pytest.raises(RedirectLoop, match="redirect loop .*loop-a -> .*loop-b -> .*loop-a"):
            client.get("https://a.example/loop-a")


def test_robots_txt_is_obeyed() -> None:
    clock, hits = FakeClock(), []
    with make_client(lambda r: (hits.append(r.url.path), httpx.Response(200))[1], clock,
                     rate_limit_per_s=100.0) as client:
        with pytest.raises(RobotsDisallowed, match="robots.txt"):
            client.get("https://a.example/private/page")
        client.get("https://a.example/public")
    assert hits == ["/public"]


def test_max_response_size() -> None:
    clock = FakeClock()
    with make_client(lambda r: httpx.Response(200, content=b"x" * 5000), clock, rate_limit_per_s=100.0,
                     max_response_bytes=1000) as client:
        with pytest.raises(ResponseTooLarge, match="1000 bytes"):
            client.get("https://a.example/big")


def test_parse_retry_after() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now_epoch=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
