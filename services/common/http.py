"""JSON over HTTP GET for the REST clients (reference provider, venue klines): retries and pacing.

One blocking call (:func:`get_json`, run in a thread by the async shells) that classifies every
answer: 2xx with JSON is returned; 429 and 418 (Binance's ban) wait ``Retry-After`` (or the
backoff) and retry; 5xx and connection errors back off exponentially and retry; any other 4xx
and a body that is not JSON raise at once with a one-line reason. :class:`Throttle` spaces
requests so a client stays under a venue's documented weight budget.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

log = logging.getLogger("cryptopulse.http")

RATE_LIMIT_STATUSES = frozenset((418, 429))
BODY_SNIPPET = 200


class HttpError(Exception):
    """A request that failed for good; ``str()`` is the one-line reason, ``status`` 0 = no answer."""

    def __init__(self, url: str, reason: str, status: int = 0) -> None:
        super().__init__(f"GET {redact(url)}: {reason}")
        self.url = url
        self.status = status


class NoAnswer(HttpError):
    """No HTTP answer at all through every attempt (refused, unreachable, timed out)."""


class MalformedResponse(HttpError):
    """The server answered 2xx with a body that is not the JSON the caller expects."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    max_wait: float = 600.0          # a Retry-After longer than this is a failure, not a sleep
    timeout: float = 15.0

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based), doubling up to the cap."""
        return float(min(self.backoff_max, self.backoff_initial * 2 ** (attempt - 1)))


DEFAULT_POLICY = RetryPolicy()


def redact(url: str) -> str:
    """The URL without its query values that look like keys (never log an API key)."""
    parts = urllib.parse.urlsplit(url)
    query = [(k, "***" if "key" in k.lower() else v) for k, v in urllib.parse.parse_qsl(parts.query)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query, safe="*")))


def retry_after_seconds(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), None when absent or unreadable."""
    if not headers:
        return None
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def decode_json(url: str, body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        snippet = body[:BODY_SNIPPET].decode(errors="replace")
        raise MalformedResponse(url, f"malformed JSON ({exc}); body starts {snippet!r}") from None


def _open(url: str, headers: Mapping[str, str], timeout: float) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"User-Agent": "cryptopulse", "Accept": "application/json",
                                                   **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (configured http(s) URLs)
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()) if exc.headers else {}, exc.read() or b""


Opener = Callable[[str, Mapping[str, str], float], tuple[int, dict[str, str], bytes]]


def get_json(url: str, headers: Mapping[str, str] | None = None, policy: RetryPolicy = DEFAULT_POLICY,
             sleep: Callable[[float], None] = time.sleep, opener: Opener = _open,
             on_wait: Callable[[int, float], None] | None = None) -> Any:
    """GET ``url`` and decode its JSON body, retrying what the policy allows (blocking).

    ``on_wait(status, seconds)`` is told before each wait, so a caller that sends other requests
    to the same host can hold them too (a 429 is for the whole IP, not this one request)."""
    last = "no attempt made"
    for attempt in range(1, policy.attempts + 1):
        try:
            status, answer_headers, body = opener(url, headers or {}, policy.timeout)
        except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections, bad URLs
            status, answer_headers, body, last = 0, {}, b"", f"no answer ({exc})"
        if 200 <= status < 300:
            return decode_json(url, body)
        if status:
            last = f"HTTP {status}: {body[:BODY_SNIPPET].decode(errors='replace')!r}"
        if status and status not in RATE_LIMIT_STATUSES and status < 500:
            raise HttpError(url, last, status)
        if attempt == policy.attempts:
            break
        wait = retry_after_seconds(answer_headers) if status in RATE_LIMIT_STATUSES else None
        wait = policy.backoff(attempt) if wait is None else wait
        if wait > policy.max_wait:
            raise HttpError(url, f"{last}; Retry-After {wait:.0f} s is beyond {policy.max_wait:.0f} s", status)
        log.warning("GET %s: %s; retrying in %.1f s (%d/%d)", redact(url), last, wait, attempt, policy.attempts)
        if on_wait is not None:
            on_wait(status, wait)
        sleep(wait)
    raise (HttpError if status else NoAnswer)(url, f"{last} after {policy.attempts} attempts", status)


class Throttle:
    """Token bucket in request weight: ``capacity`` per ``period`` seconds, refilled continuously."""

    def __init__(self, capacity: float, period: float, clock: Callable[[], float] = time.monotonic) -> None:
        if capacity <= 0 or period <= 0:
            raise ValueError("throttle capacity and period must be > 0")
        self.capacity = capacity
        self.rate = capacity / period
        self.clock = clock
        self.tokens = capacity
        self.stamp = clock()
        self.paused_until = 0.0
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` (the host said Retry-After); safe from any thread."""
        self.paused_until = max(self.paused_until, self.clock() + seconds)

    def delay(self, weight: float) -> float:
        """Seconds to wait before a request of ``weight`` may go (reserves it: call once per request)."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= min(weight, self.capacity)
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    async def acquire(self, weight: float = 1.0) -> None:
        async with self._lock:
            held = self.paused_until - self.clock()
            if held > 0:
                await asyncio.sleep(held)
            wait = self.delay(weight)
        if wait > 0:
            await asyncio.sleep(wait)
