"""Sending the outbox to the business's webhook URL, and the handshake that proves the URL is theirs.

:class:`WebhookDeliverer` is one asyncio task per gateway. Each round it claims the due events (up to
``concurrency`` in flight), POSTs each exactly as stored with fresh signature headers, records the outcome, and
then sleeps until the next event is due or :meth:`~WebhookDeliverer.notify` says one was added. Only a 2xx
answer counts as delivered; any other status, a network error or the timeout is a failed attempt, retried by
the schedule in :mod:`.retries`: not sooner than a 429's or 503's ``Retry-After`` asks, and never after a 410
Gone, which makes the event a dead letter at once. The outbox is the only state, so a restarted gateway
carries on where it was.

``now_ms`` drives the schedule and is injectable, so a test can jump hours ahead (and then call ``notify``).
The ``X-Cove-Signature`` timestamp is the real wall clock instead: the receiver compares it with its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable

import httpx

from cove import clock
from cove.business.gateway import retries, signing
from cove.business.gateway.outbox import Event, Outbox

log = logging.getLogger(__name__)

LEASE_MARGIN_MS = 5_000  # a claim outlives the request timeout by this much, so it never ends mid-request
# Look at the outbox at least this often: `cove business gateway replay` runs in another process and cannot notify.
IDLE_S = 2.0


class WebhookSetupError(Exception):
    """The webhook URL failed the verification handshake; the message says what it answered."""


class WebhookDeliverer:
    def __init__(
        self,
        outbox: Outbox,
        url: str,
        secret: bytes,
        client: httpx.AsyncClient,
        now_ms: Callable[[], int] = clock.now_ms,
        concurrency: int = 8,
        timeout_s: float = 10.0,
    ) -> None:
        self._outbox = outbox
        self._url = url
        self._secret = secret
        self._client = client
        self._now_ms = now_ms
        self._concurrency = concurrency
        self._timeout_s = timeout_s
        self._in_flight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()  # something may be due: an add, a finished attempt, a clock jump
        self._settled = asyncio.Event()  # a round or an attempt ended; drain() looks again

    def notify(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled; attempts in flight are cancelled too and, still claimed, retried later."""
        try:
            while True:
                self._wake.clear()
                self._start_due()
                self._settled.set()
                await self._sleep()
        finally:
            for task in self._in_flight:
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _start_due(self) -> None:
        free = self._concurrency - len(self._in_flight)
        if free <= 0:
            return
        lease_ms = round(self._timeout_s * 1000) + LEASE_MARGIN_MS
        for event in self._outbox.claim(self._now_ms(), free, lease_ms):
            task = asyncio.create_task(self._attempt(event))
            self._in_flight.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        # here, not at the end of _attempt, so the slot is already free when run() wakes up
        self._in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # the outcome could not be recorded; the event stays claimed and is retried when the claim ends
            log.error("webhook delivery failed", exc_info=task.exception())
        self._wake.set()  # a slot is free, and the next event of the same ordering key may be due now
        self._settled.set()

    async def _sleep(self) -> None:
        timeout_s = None  # with every slot busy, only a finished attempt (or notify) can change anything
        if len(self._in_flight) < self._concurrency:
            # claim took everything due, so the next due time is in the future (or there is none)
            next_ms = self._outbox.next_due_ms()
            timeout_s = IDLE_S if next_ms is None else min(IDLE_S, max(0.0, (next_ms - self._now_ms()) / 1000))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._wake.wait()

    async def _attempt(self, event: Event) -> None:
        attempt = event.attempts + 1
        headers = signing.headers(self._secret, event.body, event.event_id, attempt, int(time.time()))
        try:
            # the whole exchange, not just each read, so a slow trickle cannot outlive the claim
            async with asyncio.timeout(self._timeout_s):
                response = await self._client.post(self._url, content=event.body, headers=headers)
        except Exception as exc:  # whatever went wrong, it is a failed attempt, named in last_error
            error, wait_ms, final = type(exc).__name__, None, False
        else:
            error, wait_ms, final = self._outcome(response)
        if error is None:
            self._outbox.delivered(event.event_id, self._now_ms())
        elif self._outbox.failed(event.event_id, error, self._now_ms(), retry_after_ms=wait_ms, final=final):
            log.warning("webhook event %s is a dead letter after %d attempts: %s", event.event_id, attempt, error)

    def _outcome(self, response: httpx.Response) -> tuple[str | None, int | None, bool]:
        """(the error, or None when delivered; the wait the receiver asked for; whether it is final)."""
        status = response.status_code
        if response.is_success:
            return None, None, False
        if status == retries.GONE:
            return "HTTP 410 Gone: final", None, True
        wait_ms = None
        if status in retries.RETRY_AFTER_STATUSES:
            wait_ms = retries.retry_after_ms(response.headers.get("Retry-After"), self._now_ms())
        error = f"HTTP {status}" if wait_ms is None else f"HTTP {status}, Retry-After {wait_ms // 1000} s"
        return error, wait_ms, False

    async def drain(self, timeout_s: float = 30.0) -> dict[str, int | None]:
        """Wait until nothing is in flight and nothing is due at ``now_ms``; the outbox's stats then.

        For tests and benchmarks, with :meth:`run` running. Later retries are not waited for: move the clock
        and drain again. Raises TimeoutError after ``timeout_s``.
        """
        self.notify()
        async with asyncio.timeout(timeout_s):
            while self._in_flight or self._due_now():
                self._settled.clear()
                await self._settled.wait()
        return self._outbox.stats(self._now_ms())

    def _due_now(self) -> bool:
        next_ms = self._outbox.next_due_ms()
        return next_ms is not None and next_ms <= self._now_ms()


async def verify_endpoint(client: httpx.AsyncClient, url: str, verify_token: str) -> None:
    """Meta's GET handshake: the endpoint must answer 200 with our random ``hub.challenge`` as the whole body.

    The challenge is a 10-digit number, like Meta's, so receivers that parse it as a number echo it intact.
    """
    challenge = str(secrets.randbelow(9 * 10**9) + 10**9)
    try:
        response = await client.get(signing.verification_url(url, verify_token, challenge))
    except httpx.HTTPError as exc:
        raise WebhookSetupError(f"webhook URL {url} could not be reached: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise WebhookSetupError(
            f"webhook URL {url} answered the verification with HTTP {response.status_code}, not 200 "
            "(a 403 usually means the verify token does not match)"
        )
    if response.text != challenge:
        raise WebhookSetupError(
            f"webhook URL {url} answered 200 but not with the hub.challenge value alone "
            f"(got {response.text[:60]!r}); answer it as plain text, not JSON"
        )
