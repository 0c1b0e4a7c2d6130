"""A polite, SSRF-safe HTTP client for listing sites: robots.txt, per-host rate limit with jitter, a capped
per-host robots.txt ``Crawl-delay``, retries with exponential backoff honouring Retry-After, redirect-loop guard,
timeouts plus a total deadline per exchange, a response-size cap and typed errors.

Every URL the client requests — the first one, every redirect hop and each host's robots.txt — must pass its
``UrlPolicy``: an allowed scheme, host *and port*, and no private, loopback, link-local, reserved, multicast or
unspecified address unless that exact ``host:port`` is opted in (the sample site and the tests do). Addresses are
checked twice: before the request (every address the name resolves to) and again when the socket connects, on
the addresses actually dialled, so a DNS answer that changes in between cannot reach an internal address.
``routes`` (like curl's ``--resolve``) dial a named ``host:port`` at another address: a local site keeps one stable
origin in every stored URL while its server listens on whatever port it was given.

Clock and sleep are injectable, so tests run without real waiting (the deadline always uses the real clock).
"""

from __future__ import annotations

import contextvars
import email.utils
import ipaddress
import math
import random
import socket
import threading
import time
import urllib.robotparser
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from petid.errors import UserError

DEFAULT_USER_AGENT = "petid/0.1 (+https://github.com/petid-project/petid; lost-pet reunification research)"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}


class HttpConfigError(UserError, ValueError):
    """A client or policy setting is invalid (e.g. a rate limit that is not a positive number)."""


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


class UrlRefused(HttpError):
    """The URL, or a redirect hop, is outside the client's ``UrlPolicy`` (scheme, host, port or address)."""


class DeadlineExceeded(HttpError):
    """One exchange (connect, headers and the whole body) took longer than ``deadline_s``; not retried."""


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

    @property
    def charset(self) -> str | None:
        """The ``charset`` parameter of Content-Type, lower-cased; None when absent."""
        for param in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset" and value.strip().strip("'\""):
                return value.strip().strip("'\"").lower()
        return None


# -- URL policy ---------------------------------------------------------------------------------------------------


def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (raises ``OSError`` when it does not resolve)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_problem(address: str) -> str | None:
    """Why ``address`` is not a public internet address ("loopback", "private", …); None when it is public."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for name in ("loopback", "link_local", "unspecified", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{name}"):
            return name.replace("_", "-")
    return None if ip.is_global else "non-global"


def host_entry(entry: str) -> tuple[str, int | None]:
    """``"host"``, ``"host:port"``, ``"[v6]:port"`` or a URL → (lower-case host, port or None for the default)."""
    text = str(entry).strip()
    parts = urlsplit(text if "://" in text else "//" + text)
    try:
        port = parts.port
    except ValueError as exc:
        raise HttpConfigError(f"host entry {entry!r}: invalid port") from exc
    host = (parts.hostname or "").lower()
    if not host or parts.username or parts.password or parts.path.strip("/") or parts.query:
        raise HttpConfigError(f"host entry {entry!r}: expected host or host:port")
    if "://" in text and port is None:
        port = DEFAULT_PORTS.get(parts.scheme.lower())
    return host, port


def origin_entry(url: str) -> str:
    """The ``host:port`` of a URL (the port made explicit), e.g. to opt exactly one local server in."""
    scheme, host, port = split_url(url)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_url(url: str) -> tuple[str, str, int]:
    """(scheme, lower-case host, port) of an absolute http(s)-style URL; raises ``UrlRefused`` when malformed."""
    if not isinstance(url, str):
        raise UrlRefused(repr(url), "not a URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlRefused(url, "malformed URL (host or port)") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if not host:
        raise UrlRefused(url, "no host")
    port = port if port is not None else DEFAULT_PORTS.get(scheme)
    if port is None:
        raise UrlRefused(url, f"scheme {scheme!r} has no default port")
    return scheme, host, port


def _matches(entries: Iterable[tuple[str, int | None]], host: str, port: int, default_ports: Iterable[int]) -> bool:
    return any(h == host and (port == p if p is not None else port in default_ports) for h, p in entries)


@dataclass(frozen=True)
class UrlPolicy:
    """Which URLs a client may fetch; checked for the first URL and every redirect hop.

    ``allowed_hosts``: None allows any host; otherwise ``"host"`` (the scheme's default port only) or
    ``"host:port"`` entries. ``private_hosts``: ``host:port`` entries that may resolve to private/loopback
    addresses (e.g. exactly the sample site under test; a bare host means ports 80/443 only).
    ``allow_private_addresses`` lifts the address check altogether (never for live crawls). ``routes`` maps a
    ``host:port`` to the ``host:port`` actually dialled (the URL, and so its checks and Host header, keep the
    name). ``resolver`` maps (host, port) to addresses (tests inject one)."""

    allowed_hosts: Sequence[str] | None = None
    private_hosts: Sequence[str] = ()
    allow_private_addresses: bool = False
    schemes: Sequence[str] = ("http", "https")
    resolver: Callable[[str, int], Sequence[str]] = resolve_host
    routes: Mapping[str, str] = field(default_factory=dict)
    _allowed: tuple[tuple[str, int | None], ...] | None = field(init=False, repr=False, compare=False, default=None)
    _private: tuple[tuple[str, int | None], ...] = field(init=False, repr=False, compare=False, default=())
    _routes: dict[tuple[str, int], tuple[str, int]] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.allowed_hosts, str) or isinstance(self.private_hosts, str):
            raise HttpConfigError("allowed_hosts and private_hosts are lists of host[:port] entries, not one string")
        allowed = None if self.allowed_hosts is None else tuple(self.allowed_hosts)
        object.__setattr__(self, "allowed_hosts", allowed)
        object.__setattr__(self, "private_hosts", tuple(self.private_hosts))
        object.__setattr__(self, "schemes", tuple(s.lower() for s in self.schemes))
        object.__setattr__(self, "_allowed", None if allowed is None else tuple(host_entry(h) for h in allowed))
        object.__setattr__(self, "_private", tuple(host_entry(h) for h in self.private_hosts))
        object.__setattr__(self, "_routes", {_route_key(k): _route_key(v) for k, v in dict(self.routes).items()})

    def route(self, host: str, port: int) -> tuple[str, int]:
        """The (host, port) to dial for a URL's (host, port): its route, else itself."""
        return self._routes.get((host.lower(), port), (host, port))

    def host_allowed(self, url: str) -> bool:
        """Scheme, host and port are allowed (no address check)."""
        try:
            scheme, host, port = split_url(url)
        except UrlRefused:
            return False
        return scheme in self.schemes and (
            self._allowed is None or _matches(self._allowed, host, port, (DEFAULT_PORTS.get(scheme),)))

    def private_allowed(self, host: str, port: int) -> bool:
        return self.allow_private_addresses or _matches(self._private, host.lower(), port, DEFAULT_PORTS.values())

    def check(self, url: str) -> None:
        """Raise ``UrlRefused`` unless ``url`` may be fetched. A name that does not resolve passes here (the
        request then fails to connect; the connect-time check resolves again)."""
        scheme, host, port = split_url(url)
        if scheme not in self.schemes:
            raise UrlRefused(url, f"scheme {scheme!r} not allowed (only {', '.join(self.schemes)})")
        if self._allowed is not None and not _matches(self._allowed, host, port, (DEFAULT_PORTS[scheme],)):
            raise UrlRefused(url, f"host {host}:{port} not in the allowed hosts {list(self.allowed_hosts or ())}")
        if self.private_allowed(host, port):
            return
        try:
            self.vet(*self.route(host, port))
        except UrlRefused as exc:
            raise UrlRefused(url, exc.reason) from None
        except OSError:
            return

    def vet(self, host: str, port: int) -> list[str]:
        """The addresses of ``host``, each checked; raises ``UrlRefused`` when any is not public and the
        (host, port) is not opted in, ``OSError`` when the name does not resolve."""
        addresses = [host] if _is_ip(host) else list(self.resolver(host, port))
        if not addresses:
            raise OSError(f"{host} resolves to no address")
        for address in addresses:
            if problem := address_problem(address):
                shown = host if address == host else f"{host} ({address})"
                raise UrlRefused(f"{host}:{port}", f"{shown} is a {problem} address, refused (only a trusted "
                                                   f"local site may be opted in, by host:port, in private_hosts)")
        return addresses


def _route_key(entry: str) -> tuple[str, int]:
    host, port = host_entry(entry)
    if port is None:
        raise HttpConfigError(f"route entry {entry!r}: expected host:port")
    return host, port


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


# -- connect-time guard and the per-exchange deadline --------------------------------------------------------------

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("petid_http_deadline", default=None)


def _remaining(timeout: float | None) -> float | None:
    """``timeout`` shortened to what is left of the current exchange's deadline (raises when none is left)."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("request deadline exceeded")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _remaining(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _remaining(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, _remaining(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """Dials only vetted addresses (the policy's address check at connect time) and caps every socket operation
    at what is left of the exchange's deadline."""

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        dial_host, dial_port = self.policy.route(host, port)
        if self.policy.private_allowed(host, port):  # opted in by the name in the URL, routed or not
            targets = [dial_host]
        else:
            try:
                targets = self.policy.vet(dial_host, dial_port)  # UrlRefused propagates unchanged through httpx
            except OSError as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        error: Exception | None = None
        for target in targets:
            try:
                stream = self._inner.connect_tcp(target, dial_port, _remaining(timeout), local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            return _DeadlineStream(stream)
        assert error is not None
        raise error

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, policy: UrlPolicy) -> None:
        super().__init__()
        self._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(), max_connections=100,
                                             max_keepalive_connections=20, keepalive_expiry=5.0,
                                             network_backend=_GuardedBackend(policy))


# -- the client ---------------------------------------------------------------------------------------------------


@dataclass
class _Host:
    next_allowed: float = 0.0
    robots: urllib.robotparser.RobotFileParser | None = None
    crawl_delay: float | None = None  # robots.txt Crawl-delay as declared
    interval: float | None = None  # this host's effective interval (the capped Crawl-delay), when longer
    lock: threading.Lock = field(default_factory=threading.Lock)


def parse_retry_after(value: str | None, now_epoch: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None when absent/invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now_epoch is None else now_epoch))


def _number(name: str, value: Any, minimum: float = 0.0, strict: bool = True, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < minimum or (strict and number == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise HttpConfigError(f"{name} must be a finite number {bound}, got {value!r}")
    return number


class PoliteClient:
    """GET with politeness. Use as a context manager or call ``close()``.

    ``policy`` (default: any public http(s) host) is enforced on every hop. ``deadline_s`` bounds each exchange
    (connect, headers and the whole body) on the real clock; ``timeout_s`` bounds each read. A robots.txt
    ``Crawl-delay`` slows only its own host and is capped at ``max_crawl_delay_s``."""

    def __init__(self, user_agent: str = DEFAULT_USER_AGENT, rate_limit_per_s: float = 1.0, jitter: float = 0.2,
                 timeout_s: float = 20.0, connect_timeout_s: float | None = 10.0, max_retries: int = 4,
                 backoff_base_s: float = 1.0, backoff_max_s: float = 60.0, max_retry_after_s: float = 300.0,
                 max_redirects: int = 5, max_response_bytes: int = 20_000_000, obey_robots: bool = True,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None, transport: httpx.BaseTransport | None = None,
                 policy: UrlPolicy | None = None, deadline_s: float | None = 60.0,
                 max_crawl_delay_s: float = 60.0) -> None:
        rate = _number("rate_limit_per_s", rate_limit_per_s)
        self.user_agent = user_agent
        self.interval = 1.0 / rate
        self.jitter = jitter
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_retry_after_s = max_retry_after_s
        self.max_redirects = max_redirects
        self.max_response_bytes = max_response_bytes
        self.obey_robots = obey_robots
        self.deadline_s = _number("deadline_s", deadline_s, optional=True)
        self.max_crawl_delay_s = _number("max_crawl_delay_s", max_crawl_delay_s, strict=False)
        self.policy = policy if policy is not None else UrlPolicy()
        self.clock, self.sleep = clock, sleep
        self.rng = rng or random.Random()
        self.requests_sent = 0
        self.slept_s = 0.0
        self._hosts: dict[str, _Host] = {}
        self._lock = threading.Lock()
        self._client = httpx.Client(
            headers={"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s or timeout_s),
            follow_redirects=False, transport=transport if transport is not None else _GuardedTransport(self.policy))

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

    def host_interval(self, url: str) -> float:
        """Seconds between requests to ``url``'s host: the rate limit, or its robots.txt Crawl-delay (capped at
        ``max_crawl_delay_s``) when longer — known once the host's robots.txt has been read."""
        host = self._host(url)
        return max(self.interval, host.interval or 0.0)

    def robots_crawl_delay(self, url: str) -> float | None:
        """The Crawl-delay ``url``'s host declared in robots.txt (uncapped); None when none or not read yet."""
        return self._host(url).crawl_delay

    def _wait_turn(self, url: str) -> None:
        """Block until this host's next slot; slots are ``interval * (1 + U(0, jitter))`` apart."""
        host = self._host(url)
        with host.lock:
            now = self.clock()
            if host.next_allowed > now:
                self._sleep(host.next_allowed - now)
                now = self.clock()
            interval = max(self.interval, host.interval or 0.0)
            host.next_allowed = now + interval * (1.0 + self.rng.uniform(0.0, self.jitter))

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
            try:
                delay = float(delay) if delay is not None else None
            except (TypeError, ValueError):
                delay = None
            if delay is not None and math.isfinite(delay) and delay > 0:
                host.crawl_delay = delay
                host.interval = min(delay, self.max_crawl_delay_s)
            host.robots = parser
        return host.robots

    def allowed(self, url: str) -> bool:
        """Whether robots.txt lets our User-Agent fetch ``url``."""
        return not self.obey_robots or self._robots(url).can_fetch(self.user_agent, url)

    # -- requests -----------------------------------------------------------------------------------------------
    def get(self, url: str) -> Response:
        """GET ``url`` following redirects; raises a subclass of ``HttpError`` unless the final status is 2xx.
        Every hop must pass the policy (``UrlRefused`` otherwise) before anything is sent to it."""
        return self._fetch(url, check_robots=True)

    def _fetch(self, url: str, check_robots: bool) -> Response:
        seen = [url]
        current = url
        while True:
            try:
                self.policy.check(current)
            except UrlRefused as exc:
                if current == url:
                    raise
                raise UrlRefused(url, f"redirect to {current} refused: {exc.reason}") from exc
            if check_robots and not self.allowed(current):
                raise RobotsDisallowed(current, "disallowed by robots.txt")
            response = self._get_with_retries(current)
            if response.status in REDIRECT_STATUSES and "location" in response.headers:
                try:
                    target = urljoin(current, response.headers["location"])
                except ValueError:
                    raise UrlRefused(url, f"malformed redirect location {response.headers['location']!r}") from None
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
            except (ResponseTooLarge, DeadlineExceeded, UrlRefused):
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
        deadline = None if self.deadline_s is None else time.monotonic() + self.deadline_s
        token = _DEADLINE.set(deadline)
        try:
            with self._client.stream("GET", url) as stream:
                declared = stream.headers.get("content-length")
                if declared and declared.isascii() and declared.isdigit() \
                        and int(declared) > self.max_response_bytes:
                    raise ResponseTooLarge(url, f"Content-Length {declared} > {self.max_response_bytes} bytes")
                chunks, size = [], 0
                for chunk in stream.iter_bytes():
                    size += len(chunk)
                    if size > self.max_response_bytes:
                        raise ResponseTooLarge(url, f"body larger than {self.max_response_bytes} bytes")
                    chunks.append(chunk)
                    if deadline is not None and time.monotonic() > deadline:  # custom transports
                        raise DeadlineExceeded(url, f"no complete answer within the {self.deadline_s:g} s deadline")
                return Response(url=str(stream.url), status=stream.status_code,
                                headers={k.lower(): v for k, v in stream.headers.items()}, content=b"".join(chunks))
        except httpx.TimeoutException as exc:
            if deadline is not None and time.monotonic() >= deadline - 0.05:
                raise DeadlineExceeded(url, f"no complete answer within the {self.deadline_s:g} s deadline") from exc
            raise
        finally:
            _DEADLINE.reset(token)
