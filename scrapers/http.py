"""A polite HTTP client for listing sites: robots.txt, per-host rate limit with jitter, retries with exponential
backoff honouring Retry-After, redirect-loop guard, timeouts, a response-size cap and typed errors.

Clock and sleep are injectable, so tests run without real waiting.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
import urllib.robotparser
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx

from petid.errors import UserError

DEFAULT_USER_AGENT = "petid/0.1 (+https://github.com/petid-project/petid; lost-pet reunification research)"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class HttpError(UserError):
    """Base of every error this client raises; ``url`` names the offending request."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(f"{message}: {url}")
        self.url = url
        self.reason = message


class RobotsDisallowed(HttpError):
    """robots.txt forbids the URL for our User-Agent."""


class RedirectLoop(HttpError):
    """A redirect chain revisits a URL or exceeds ``max_redirects``."""


class ResponseTooLarge(HttpError):
    """The body exceeds ``max_response_bytes``."""


class HttpStatusError(HttpError):
    """A final non-2xx status (after retries, for retryable ones)."""

    def __init__(self, url: str, status: int, message: str | None = None) -> None:
        super().__init__(url, message or f"HTTP {status}")
        self.status = status


class RetriesExhausted(HttpError):
    """Connection errors/timeouts/truncated bodies persisted through every retry."""


@dataclass
class Response:
    url: str  # the final URL after redirects
    status: int
    headers: dict[str, str]
    content: bytes
    requested_url: str = ""

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass
class _Host:
    next_allowed: float = 0.0
    robots: urllib.robotparser.RobotFileParser | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def parse_retry_after(value: str | None, now_epoch: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None when absent/invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now_epoch is None else now_epoch))


class PoliteClient:
    """GET with politeness. Use as a context manager or call ``close()``."""

    def __init__(self, user_agent: str = DEFAULT_USER_AGENT, rate_limit_per_s: float = 1.0, jitter: float = 0.2,
                 timeout_s: float = 20.0, connect_timeout_s: float | None = 10.0, max_retries: int = 4,
                 backoff_base_s: float = 1.0, backoff_max_s: float = 60.0, max_retry_after_s: float = 300.0,
                 max_redirects: int = 5, max_response_bytes: int = 20_000_000, obey_robots: bool = True,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None, transport: httpx.BaseTransport | None = None) -> None:
        if rate_limit_per_s <= 0:
            raise ValueError(f"rate_limit_per_s must be > 0, got {rate_limit_per_s}")
        self.user_agent = user_agent
        self.interval = 1.0 / rate_limit_per_s
        self.jitter = jitter
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_retry_after_s = max_retry_after_s
        self.max_redirects = max_redirects
        self.max_response_bytes = max_response_bytes
        self.obey_robots = obey_robots
        self.clock, self.sleep = clock, sleep
        self.rng = rng or random.Random()
        self.requests_sent = 0
        self.slept_s = 0.0
        self._hosts: dict[str, _Host] = {}
        self._lock = threading.Lock()
        self._client = httpx.Client(
            headers={"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s or timeout_s),
            follow_redirects=False, transport=transport)

    def __enter__(self) -> PoliteClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    # -- politeness ---------------------------------------------------------------------------------------------
    def _host(self, url: str) -> _Host:
        key = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        with self._lock:
            return self._hosts.setdefault(key, _Host())

    def _wait_turn(self, url: str) -> None:
        """Block until this host's next slot; slots are ``interval * (1 + U(0, jitter))`` apart."""
        host = self._host(url)
        with host.lock:
            now = self.clock()
            if host.next_allowed > now:
                self._sleep(host.next_allowed - now)
                now = self.clock()
            host.next_allowed = now + self.interval * (1.0 + self.rng.uniform(0.0, self.jitter))

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.slept_s += seconds
            self.sleep(seconds)

    def _robots(self, url: str) -> urllib.robotparser.RobotFileParser:
        host = self._host(url)
        if host.robots is None:
            parser = urllib.robotparser.RobotFileParser()
            robots_url = urljoin(url, "/robots.txt")
            try:
                response = self._fetch(robots_url, check_robots=False)
                parser.parse(response.content.decode("utf-8", errors="replace").splitlines())
            except HttpStatusError as exc:
                if 400 <= exc.status < 500 and exc.status not in (401, 403):
                    parser.parse([])  # no robots.txt: everything allowed (RFC 9309)
                else:
                    parser.parse(["User-agent: *", "Disallow: /"])
            except HttpError:
                parser.parse(["User-agent: *", "Disallow: /"])  # unreachable: assume complete disallow
            delay = parser.crawl_delay(self.user_agent)
            if delay:
                self.interval = max(self.interval, float(delay))
            host.robots = parser
        return host.robots

    def allowed(self, url: str) -> bool:
        """Whether robots.txt lets our User-Agent fetch ``url``."""
        return not self.obey_robots or self._robots(url).can_fetch(self.user_agent, url)

    # -- requests -----------------------------------------------------------------------------------------------
    def get(self, url: str) -> Response:
        """GET ``url`` following redirects; raises a subclass of ``HttpError`` unless the final status is 2xx."""
        return self._fetch(url, check_robots=True)

    def _fetch(self, url: str, check_robots: bool) -> Response:
        seen = [url]
        current = url
        while True:
            if check_robots and not self.allowed(current):
                raise RobotsDisallowed(current, "disallowed by robots.txt")
            response = self._get_with_retries(current)
            if response.status in REDIRECT_STATUSES and "location" in response.headers:
                target = urljoin(current, response.headers["location"])
                if target in seen:
                    raise RedirectLoop(url, "redirect loop " + " -> ".join([*seen, target]))
                if len(seen) > self.max_redirects:
                    raise RedirectLoop(url, f"more than {self.max_redirects} redirects")
                seen.append(target)
                current = target
                continue
            if not 200 <= response.status < 300:
                raise HttpStatusError(current, response.status)
            response.requested_url = url
            return response

    def _backoff(self, attempt: int) -> float:
        base = min(self.backoff_max_s, self.backoff_base_s * (2 ** attempt))
        return base * (1.0 + self.rng.uniform(0.0, 0.25))

    def _get_with_retries(self, url: str) -> Response:
        last_reason = ""
        for attempt in range(self.max_retries + 1):
            self._wait_turn(url)
            try:
                response = self._get_once(url)
            except ResponseTooLarge:
                raise
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last_reason = f"{type(exc).__name__}: {exc}"
                if attempt < self.max_retries:
                    self._sleep(self._backoff(attempt))
                continue
            if response.status in RETRY_STATUSES:
                last_reason = f"HTTP {response.status}"
                if attempt < self.max_retries:
                    wait = parse_retry_after(response.headers.get("retry-after"))
                    wait = self._backoff(attempt) if wait is None else min(wait, self.max_retry_after_s)
                    self._sleep(wait)
                    continue
                raise HttpStatusError(url, response.status, f"HTTP {response.status} after {attempt + 1} attempts")
            return response
        raise RetriesExhausted(url, f"gave up after {self.max_retries + 1} attempts ({last_reason})")

    def _get_once(self, url: str) -> Response:
        self.requests_sent += 1
        with self._client.stream("GET", url) as stream:
            declared = stream.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_response_bytes:
                raise ResponseTooLarge(url, f"Content-Length {declared} > {self.max_response_bytes} bytes")
            chunks, size = [], 0
            for chunk in stream.iter_bytes():
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise ResponseTooLarge(url, f"body larger than {self.max_response_bytes} bytes")
                chunks.append(chunk)
            return Response(url=str(stream.url), status=stream.status_code,
                            headers={k.lower(): v for k, v in stream.headers.items()}, content=b"".join(chunks))
