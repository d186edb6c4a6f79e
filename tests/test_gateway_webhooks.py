"""Webhook delivery of the business gateway: signatures, the retry schedule, the SQLite outbox, and delivery to a
real receiver process through an outage, a gateway restart and a dead-letter replay."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cove.business.gateway import retries, signing
from cove.business.gateway.delivery import WebhookDeliverer, WebhookSetupError, verify_endpoint
from cove.business.gateway.outbox import Outbox
from cove.testing import free_port

SECRET = b"app-secret-for-tests"
VERIFY_TOKEN = "verify-me"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
START_MS = 1_760_000_000_000


def _hex_hmac(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


# signing ------------------------------------------------------------------------------------------------------
def test_hub_signature_known_answers() -> None:
    # RFC 4231, test case 2
    assert (
        signing.hub_signature(b"Jefe", b"what do ya want for nothing?")
        == "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    body = b'{"object":"whatsapp_business_account"}'
    assert signing.hub_signature(SECRET, body) == "sha256=" + _hex_hmac(SECRET, body)


def test_timestamped_signature_covers_the_timestamp() -> None:
    body = b'{"entry":[]}'
    expected = _hex_hmac(SECRET, b"1760000000." + body)
    assert signing.timestamped_signature(SECRET, body, 1_760_000_000) == f"t=1760000000,v1={expected}"


def test_headers_of_an_attempt() -> None:
    body = b"{}"
    headers = signing.headers(SECRET, body, "ev-1", 3, 1_760_000_000)
    assert headers == {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": signing.hub_signature(SECRET, body),
        "X-Cove-Signature": signing.timestamped_signature(SECRET, body, 1_760_000_000),
        "X-Cove-Event-Id": "ev-1",
        "X-Cove-Delivery-Attempt": "3",
    }


def test_verify_hub_signature() -> None:
    body = b'{"a":1}'
    header = signing.hub_signature(SECRET, body)
    assert signing.verify_hub_signature(SECRET, body, header)
    assert not signing.verify_hub_signature(SECRET, b'{"a":2}', header)  # tampered body
    assert not signing.verify_hub_signature(SECRET, b'{"a": 1}', header)  # re-serialised body
    assert not signing.verify_hub_signature(b"other secret", body, header)
    assert not signing.verify_hub_signature(SECRET, body, None)
    assert not signing.verify_hub_signature(SECRET, body, header.removeprefix("sha256="))
    assert not signing.verify_hub_signature(SECRET, body, header.upper())


def test_verify_timestamped() -> None:
    body = b'{"a":1}'
    now = 1_760_000_000
    header = signing.timestamped_signature(SECRET, body, now)
    assert signing.verify_timestamped(SECRET, body, header, now)
    assert signing.verify_timestamped(SECRET, body, header, now + 300)
    assert not signing.verify_timestamped(SECRET, body, header, now + 301)  # replayed too late
    assert not signing.verify_timestamped(SECRET, body, header, now - 301)  # from the future
    assert not signing.verify_timestamped(SECRET, b'{"a":2}', header, now)
    assert not signing.verify_timestamped(b"other secret", body, header, now)
    assert not signing.verify_timestamped(SECRET, body, None, now)
    mac = header.split("v1=")[1]
    assert not signing.verify_timestamped(SECRET, body, f"t={now + 1},v1={mac}", now)  # moved timestamp
    for malformed in ("", "t=,v1=", f"v1={mac}", f"t={now}", f"t=abc,v1={mac}", f"t=١٢,v1={mac}"):
        assert not signing.verify_timestamped(SECRET, body, malformed, now), malformed


@given(st.text(), st.binary(max_size=64))
def test_verifiers_answer_false_and_never_raise_on_garbage(header: str, body: bytes) -> None:
    assert not signing.verify_hub_signature(SECRET, body, header)
    assert not signing.verify_timestamped(SECRET, body, header, 1_760_000_000)


def test_verification_url_keeps_the_query() -> None:
    url = signing.verification_url("https://shop.example/hooks?tenant=7#x", "tok en&", "123")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path, parts.fragment) == ("https", "shop.example", "/hooks", "x")
    assert parse_qs(parts.query) == {
        "tenant": ["7"],
        "hub.mode": ["subscribe"],
        "hub.verify_token": ["tok en&"],
        "hub.challenge": ["123"],
    }
    assert urlsplit(signing.verification_url("http://h/", "t", "1")).query.startswith("hub.mode=subscribe")


# retries ------------------------------------------------------------------------------------------------------
event_ids = st.text(min_size=1, max_size=40)
attempts = st.integers(min_value=1, max_value=1_000)


@given(attempts)
def test_base_wait_starts_at_5_s_doubles_and_is_capped_at_an_hour(attempt: int) -> None:
    assert retries.base_wait_ms(1) == 5_000
    assert retries.base_wait_ms(2) == 10_000
    assert 5_000 <= retries.base_wait_ms(attempt) <= retries.base_wait_ms(attempt + 1) <= HOUR_MS


@given(event_ids, attempts)
def test_jitter_is_bounded_and_reproducible(event_id: str, attempt: int) -> None:
    base = retries.base_wait_ms(attempt)
    wait = retries.wait_ms(event_id, attempt)
    assert base * (1 - retries.JITTER) - 1 <= wait <= base * (1 + retries.JITTER) + 1
    assert wait == retries.wait_ms(event_id, attempt)


def test_jitter_spreads_the_events_of_one_outage() -> None:
    waits = {retries.wait_ms(f"ev-{i}", 1) for i in range(50)}
    assert len(waits) > 40
    assert min(waits) < 4_500 and max(waits) > 5_500


@given(event_ids, attempts, st.integers(0, 2**42), st.integers(0, 2 * retries.RETRY_FOR_MS))
def test_next_attempt_never_goes_past_7_days(event_id: str, attempt: int, created_at: int, elapsed: int) -> None:
    now = created_at + elapsed
    next_ms = retries.next_attempt_ms(event_id, attempt, created_at, now)
    if elapsed >= retries.RETRY_FOR_MS:
        assert next_ms is None
    else:
        assert next_ms is not None and now < next_ms <= created_at + retries.RETRY_FOR_MS


def test_an_endpoint_that_never_answers_is_tried_for_7_days_then_given_up() -> None:
    times = [0]  # when each attempt is made; every one fails
    while (next_ms := retries.next_attempt_ms("ev", len(times), 0, times[-1])) is not None and len(times) < 1_000:
        times.append(next_ms)
    assert times[-1] == retries.RETRY_FOR_MS  # the last try is at the horizon
    assert all(b - a <= HOUR_MS * (1 + retries.JITTER) for a, b in zip(times, times[1:], strict=False))
    assert 150 < len(times) < 200


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120_000),
        (" 7 ", 7_000),
        ("0", 0),
        ("Mon, 07 Dec 2026 10:00:30 GMT", 30_000),  # an HTTP-date, 30 s after now
        ("Mon, 07 Dec 2026 09:00:00 GMT", 0),  # a date in the past: no wait
        ("99999999999999999999", retries.RETRY_FOR_MS),  # bounded, not an overflow
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("Mon, 07 Dec 2026 10:00:30", None),  # no zone: not an HTTP-date
        ("٣", None),  # a digit, but not an ASCII one
        ("1" * 65, None),  # too long to read
    ],
)
def test_retry_after_is_seconds_or_an_http_date(header: str | None, expected: int | None) -> None:
    now_ms = 1_796_637_600_000  # Mon, 07 Dec 2026 10:00:00 GMT
    assert retries.retry_after_ms(header, now_ms) == expected


@given(st.text(max_size=80))
def test_retry_after_never_raises_and_never_goes_back(header: str) -> None:
    wait = retries.retry_after_ms(header, START_MS)
    assert wait is None or wait >= 0


@given(event_ids, attempts, st.integers(0, 2**42), st.integers(0, 2 * retries.RETRY_FOR_MS), st.integers(0, 2**40))
def test_retry_after_is_waited_for_up_to_the_longest_wait(
    event_id: str, attempt: int, created_at: int, elapsed: int, asked: int
) -> None:
    now = created_at + elapsed
    next_ms = retries.next_attempt_ms(event_id, attempt, created_at, now, retry_after_ms=asked)
    scheduled = retries.next_attempt_ms(event_id, attempt, created_at, now)
    if elapsed >= retries.RETRY_FOR_MS:
        assert next_ms is None
        return
    give_up_at = created_at + retries.RETRY_FOR_MS
    assert next_ms is not None and scheduled is not None
    assert scheduled <= next_ms <= give_up_at  # never sooner than without the header, never past 7 days
    assert next_ms == min(give_up_at, max(scheduled, now + min(asked, retries.MAX_WAIT_MS)))


# outbox -------------------------------------------------------------------------------------------------------
def open_db(path: Path | str) -> sqlite3.Connection:
    """The gateway's way: autocommit, WAL, explicit transactions."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    return db


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    db = open_db(tmp_path / "gateway.db")
    yield Outbox(db)
    db.close()


def ids(events: list) -> list[str]:
    return [e.event_id for e in events]


def test_add_is_idempotent_by_event_id(outbox: Outbox) -> None:
    assert outbox.add("ev-1", b'{"first":1}', START_MS, "wamid.1")
    assert not outbox.add("ev-1", b'{"second":2}', START_MS + 1, "wamid.2")
    [event] = outbox.due(START_MS, 10)
    assert (event.event_id, event.body, event.ordering_key, event.attempts) == ("ev-1", b'{"first":1}', "wamid.1", 0)
    assert outbox.stats(START_MS)["pending"] == 1


def test_add_joins_the_callers_transaction(tmp_path: Path) -> None:
    db = open_db(tmp_path / "gateway.db")
    db.execute("CREATE TABLE messages (id TEXT PRIMARY KEY)")  # another module's table in the same file
    outbox = Outbox(db)
    with pytest.raises(RuntimeError), db:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO messages VALUES ('wamid.1')")
        outbox.add("ev-rolled-back", b"{}", START_MS)
        raise RuntimeError("the caller's write failed")
    with db:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO messages VALUES ('wamid.2')")
        outbox.add("ev-committed", b"{}", START_MS)
    again = open_db(tmp_path / "gateway.db")  # what another connection (or a restart) sees
    assert again.execute("SELECT id FROM messages").fetchall() == [("wamid.2",)]
    assert ids(Outbox(again).due(START_MS, 10)) == ["ev-committed"]
    again.close()
    db.close()


def test_statuses_of_one_message_go_out_one_at_a_time_in_order(outbox: Outbox) -> None:
    outbox.add("sent", b"{}", START_MS, "wamid.1")
    outbox.add("other", b"{}", START_MS, "wamid.2")
    outbox.add("delivered", b"{}", START_MS, "wamid.1")  # same millisecond: insertion order decides
    outbox.add("read", b"{}", START_MS + 1, "wamid.1")
    outbox.add("keyless", b"{}", START_MS + 2)
    assert ids(outbox.due(START_MS + 2, 10)) == ["sent", "other", "keyless"]
    outbox.failed("sent", "HTTP 503", START_MS + 2)  # waiting for a retry still blocks its key
    assert ids(outbox.due(START_MS + 2, 10)) == ["other", "keyless"]
    retry = outbox.due(START_MS + HOUR_MS, 10)[0]
    assert retry.event_id == "sent" and retry.attempts == 1 and retry.last_error == "HTTP 503"
    outbox.delivered("sent", START_MS + HOUR_MS)
    assert ids(outbox.due(START_MS + HOUR_MS, 10)) == ["other", "delivered", "keyless"]  # oldest first
    outbox.delivered("delivered", START_MS + HOUR_MS)
    assert ids(outbox.due(START_MS + HOUR_MS, 10)) == ["other", "read", "keyless"]


def test_claimed_events_are_not_handed_out_twice(outbox: Outbox) -> None:
    outbox.add("a", b"{}", START_MS)
    outbox.add("b", b"{}", START_MS)
    assert ids(outbox.claim(START_MS, 1, lease_ms=15_000)) == ["a"]
    assert ids(outbox.claim(START_MS, 10, lease_ms=15_000)) == ["b"]
    assert outbox.claim(START_MS, 10, lease_ms=15_000) == []
    assert outbox.next_due_ms() == START_MS + 15_000
    assert ids(outbox.due(START_MS + 15_000, 10)) == ["a", "b"]  # a claim that ran out (a crash) is retried


def test_dead_letters_stop_blocking_and_can_be_replayed(outbox: Outbox) -> None:
    outbox.add("sent", b"{}", START_MS, "wamid.1")
    outbox.add("read", b"{}", START_MS, "wamid.1")
    assert not outbox.failed("sent", "ConnectError", START_MS)
    next_ms = outbox.next_due_ms()
    assert next_ms is not None and START_MS + 4_000 <= next_ms <= START_MS + 6_000
    assert outbox.due(START_MS + 1_000, 10) == []
    late = START_MS + retries.RETRY_FOR_MS
    assert outbox.failed("sent", "ConnectError", late)  # past the horizon: dead
    [dead] = outbox.dead_letters()
    assert (dead.event_id, dead.attempts, dead.dead_at_ms, dead.last_error) == ("sent", 2, late, "ConnectError")
    assert ids(outbox.due(late, 10)) == ["read"]  # a dead event does not hold its key back
    assert outbox.stats(late) == {"pending": 1, "delivered": 0, "dead": 1, "oldest_pending_age_ms": late - START_MS}
    outbox.delivered("read", late)
    assert outbox.replay(["unknown", "read"], late) == 0  # only dead letters are replayed
    assert outbox.replay(None, late + 1) == 1
    [replayed] = outbox.due(late + 1, 10)
    assert (replayed.event_id, replayed.attempts, replayed.dead_at_ms) == ("sent", 2, None)
    assert outbox.dead_letters() == []
    assert outbox.failed("sent", "HTTP 500", late + 2)  # still past the horizon: one try per replay
    assert outbox.replay(["sent"], late + 3) == 1


TICKS = [0, 1, 6_000, 60_000, HOUR_MS, 3 * DAY_MS]
operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from(["wamid.1", "wamid.2", "wamid.3", None])),
        st.tuples(st.just("delivered"), st.integers(0, 20)),
        st.tuples(st.just("failed"), st.integers(0, 20)),
        st.tuples(st.just("tick"), st.sampled_from(TICKS)),
        st.tuples(st.just("replay"), st.none()),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_due_only_ever_shows_the_oldest_pending_event_of_each_key(ops: list[tuple[str, object]]) -> None:
    db = sqlite3.connect(":memory:", isolation_level=None)
    outbox = Outbox(db)
    now, created = START_MS, []  # (event_id, ordering_key) in creation order
    for op, arg in ops:
        if op == "add":
            created.append((f"ev-{len(created)}", arg))
            outbox.add(created[-1][0], b"{}", now, arg)
        elif op == "tick":
            now += arg
        elif op == "replay":
            outbox.replay(None, now)
        elif due := outbox.due(now, 100):
            chosen = due[arg % len(due)].event_id
            if op == "delivered":
                outbox.delivered(chosen, now)
            else:
                outbox.failed(chosen, "HTTP 500", now)

        stored = {
            row[0]: row[1:]
            for row in db.execute(
                "SELECT event_id, delivered_at_ms IS NULL AND dead_at_ms IS NULL, next_attempt_at_ms "
                "FROM webhook_events"
            )
        }
        pending = [(event_id, key) for event_id, key in created if stored[event_id][0]]
        heads = [
            event_id
            for i, (event_id, key) in enumerate(pending)
            if key is None or all(other_key != key for _, other_key in pending[:i])
        ]
        shown = ids(outbox.due(now, 100))
        blocked = set(shown) - set(heads)
        assert not blocked, f"{blocked} shown while an earlier event of the same key is pending"
        assert shown == [event_id for event_id in heads if stored[event_id][1] <= now]
    db.close()


# delivery to a real receiver ----------------------------------------------------------------------------------
RECEIVER = Path(__file__).with_name("webhook_receiver.py")


@dataclass
class Receiver:
    url: str
    out: Path
    down_file: Path
    answer_file: Path  # while it exists, every POST is answered as its text says ("429 120", "410")

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.out.read_text().splitlines()] if self.out.exists() else []

    async def stats(self, client: httpx.AsyncClient) -> dict[str, int]:
        return (await client.get(f"{self.url}stats")).json()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    port = free_port()
    made = Receiver(f"http://127.0.0.1:{port}/", tmp_path / "received.jsonl", tmp_path / "down", tmp_path / "answer")
    log_path = tmp_path / "receiver.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, str(RECEIVER), "--port", str(port), "--secret", SECRET.decode()]
            + ["--verify-token", VERIFY_TOKEN, "--out", str(made.out), "--down-file", str(made.down_file)]
            + ["--answer-file", str(made.answer_file)],
            stdout=log,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 30
        while not _answers(f"{made.url}stats"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the webhook receiver did not start: {log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        yield made
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    with contextlib.suppress(httpx.TransportError):
        return httpx.get(url, timeout=1).status_code == 200
    return False


class FakeClock:
    def __init__(self) -> None:
        self.ms = START_MS

    def now_ms(self) -> int:
        return self.ms


def webhook_body(field: str, value: dict) -> bytes:
    """A Cloud API webhook, as the gateway would store it."""
    entry = {"id": "waba-1", "changes": [{"field": field, "value": value}]}
    return json.dumps({"object": "whatsapp_business_account", "entry": [entry]}, separators=(",", ":")).encode()


def status_body(message_id: str, status: str, timestamp_s: int) -> bytes:
    status_entry = {"id": message_id, "status": status, "timestamp": str(timestamp_s), "recipient_id": "CC.U1"}
    metadata = {"display_phone_number": "15550001111", "phone_number_id": "pn-1"}
    return webhook_body("messages", {"messaging_product": "whatsapp", "metadata": metadata, "statuses": [status_entry]})


def quality_body(n: int) -> bytes:
    return webhook_body("phone_number_quality_update", {"display_phone_number": "15550001111", "event": f"E{n}"})


async def test_receiver_checks_signatures_and_drops_duplicates(receiver: Receiver) -> None:
    body = status_body("wamid.1", "sent", 1)
    now_s = int(time.time())
    async with httpx.AsyncClient() as client:
        good = signing.headers(SECRET, body, "ev-1", 1, now_s)
        assert (await client.post(receiver.url, content=body, headers=good)).status_code == 200
        assert (
            await client.post(receiver.url, content=body, headers={**good, "X-Cove-Delivery-Attempt": "2"})
        ).status_code == 200
        for bad in (
            signing.headers(SECRET, body, "ev-2", 1, now_s - 3_600),  # an old capture, replayed
            {**signing.headers(SECRET, body, "ev-2", 1, now_s), "X-Hub-Signature-256": "sha256=00"},
            {k: v for k, v in signing.headers(SECRET, body, "ev-2", 1, now_s).items() if k != "X-Cove-Signature"},
        ):
            assert (await client.post(receiver.url, content=body, headers=bad)).status_code == 401
        tampered = body.replace(b'"sent"', b'"read"')
        assert (await client.post(receiver.url, content=tampered, headers=good)).status_code == 401
        assert await receiver.stats(client) == {
            "received": 1,
            "duplicates": 1,
            "rejected_signature": 4,
            "refused_down": 0,
            "answered": 0,
        }
    assert [r["event_id"] for r in receiver.records()] == ["ev-1"]


async def test_every_event_reaches_the_receiver_once_in_order_through_an_outage(
    receiver: Receiver, tmp_path: Path
) -> None:
    clock = FakeClock()
    bodies: dict[str, bytes] = {}
    order: dict[str | None, list[str]] = {}  # the creation order of each ordering key's events

    def add(outbox: Outbox, message_id: str | None, status: str) -> None:
        event_id = f"{message_id or 'quality'}:{status}:{len(bodies)}"
        if message_id is None:
            bodies[event_id] = quality_body(len(bodies))
        else:
            bodies[event_id] = status_body(message_id, status, clock.ms // 1000)
        assert outbox.add(event_id, bodies[event_id], clock.ms, message_id)
        order.setdefault(message_id, []).append(event_id)

    def add_events(outbox: Outbox, first_message: int) -> None:
        """Three statuses of each of five messages, and three events about no message."""
        for n in range(first_message, first_message + 5):
            for status in ("sent", "delivered", "read"):
                add(outbox, f"wamid.{n}", status)
        for _ in range(3):
            add(outbox, None, "update")

    db = open_db(tmp_path / "gateway.db")
    async with httpx.AsyncClient() as client:
        await verify_endpoint(client, receiver.url, VERIFY_TOKEN)
        with pytest.raises(WebhookSetupError, match="403"):
            await verify_endpoint(client, receiver.url, "wrong token")

        def start() -> tuple[Outbox, WebhookDeliverer, asyncio.Task[None]]:
            outbox = Outbox(db)
            deliverer = WebhookDeliverer(outbox, receiver.url, SECRET, client, clock.now_ms, concurrency=4)
            return outbox, deliverer, asyncio.create_task(deliverer.run())

        outbox, deliverer, worker = start()
        try:
            # the endpoint is up
            add_events(outbox, 0)
            assert (await deliverer.drain())["pending"] == 0

            # an outage: an hour of failed attempts, and the gateway restarts in the middle of it
            receiver.down_file.touch()
            add_events(outbox, 100)
            for step in range(6):
                clock.ms += 10 * 60_000
                stats = await deliverer.drain()
                if step == 2:
                    worker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker
                    db.close()
                    db = open_db(tmp_path / "gateway.db")
                    outbox, deliverer, worker = start()
            assert stats["pending"] == 18 and stats["delivered"] == 18
            assert (await receiver.stats(client))["refused_down"] >= 6 * 8  # 5 heads of keys and 3 keyless, each round

            # the endpoint is back: within the longest wait so far, everything arrives
            receiver.down_file.unlink()
            clock.ms += 2 * HOUR_MS
            assert await deliverer.drain() == {
                "pending": 0,
                "delivered": 36,
                "dead": 0,
                "oldest_pending_age_ms": None,
            }

            # down for more than the 7-day horizon: a dead letter, replayed once the endpoint is back
            receiver.down_file.touch()
            add(outbox, "wamid.late", "sent")
            await deliverer.drain()
            clock.ms += 8 * DAY_MS
            assert (await deliverer.drain())["dead"] == 1
            receiver.down_file.unlink()
            assert outbox.replay(None, clock.ms) == 1
            assert (await deliverer.drain())["delivered"] == 37
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            db.close()

        received = await receiver.stats(client)
    records = receiver.records()
    assert Counter(r["event_id"] for r in records) == Counter(bodies.keys())  # nothing lost, nothing twice
    assert received["received"] == len(bodies) and received["duplicates"] == 0
    assert received["rejected_signature"] == 0
    for record in records:
        body = bodies[record["event_id"]]
        assert record["body"] == json.loads(body)
        assert record["hub_signature"] == signing.hub_signature(SECRET, body)  # the stored bytes, unchanged
    for key, created in order.items():
        if key is not None:
            assert [r["event_id"] for r in records if r["event_id"] in created] == created, key
    attempt = {r["event_id"]: r["attempt"] for r in records}
    assert attempt["wamid.100:sent:18"] > 6  # retried through the outage, counted across the restart
    assert attempt["wamid.100:delivered:19"] == 1  # never tried while the status before it was pending
    assert attempt["wamid.late:sent:36"] == 3  # failed, dead-lettered on the next failure, replayed


async def test_a_receiver_s_retry_after_is_honoured_and_a_410_is_final(receiver: Receiver, tmp_path: Path) -> None:
    clock = FakeClock()
    db = open_db(tmp_path / "gateway.db")
    outbox = Outbox(db)
    async with httpx.AsyncClient() as client:
        deliverer = WebhookDeliverer(outbox, receiver.url, SECRET, client, clock.now_ms)
        worker = asyncio.create_task(deliverer.run())

        async def answered() -> list[dict]:
            return (await client.get(f"{receiver.url}answered")).json()

        try:
            # 429 with Retry-After in seconds: the schedule would try again after about 5 s; the receiver asked
            # for 20 minutes, so nothing is sent before them, and the event arrives after them.
            receiver.answer_file.write_text("429 1200")
            outbox.add("ev-slow", quality_body(1), clock.ms)
            await deliverer.drain()
            assert [a["event_id"] for a in await answered()] == ["ev-slow"]
            receiver.answer_file.unlink()
            for _ in range(3):
                clock.ms += 5 * 60_000  # 15 minutes in all
                await deliverer.drain()
            assert receiver.records() == [] and outbox.stats(clock.ms)["pending"] == 1
            clock.ms += 5 * 60_000 + 1_000
            await deliverer.drain()
            assert [r["event_id"] for r in receiver.records()] == ["ev-slow"]
            assert receiver.records()[0]["attempt"] == 2

            # 503 with an HTTP-date (on the gateway's clock), and a Retry-After longer than the longest wait:
            # waited for until the date, and at most an hour.
            when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(clock.ms // 1000 + 600))
            receiver.answer_file.write_text(f"503 {when}")
            outbox.add("ev-dated", quality_body(2), clock.ms)
            await deliverer.drain()
            receiver.answer_file.write_text("429 86400")
            clock.ms += 590_000
            await deliverer.drain()
            assert [a["event_id"] for a in await answered()] == ["ev-slow", "ev-dated"]  # not yet tried again
            clock.ms += 11_000
            await deliverer.drain()
            assert [a["event_id"] for a in await answered()][-1] == "ev-dated"  # tried, asked for a day
            receiver.answer_file.unlink()
            clock.ms += HOUR_MS - 60_000
            await deliverer.drain()
            assert "ev-dated" not in {r["event_id"] for r in receiver.records()}
            clock.ms += 61_000
            await deliverer.drain()
            assert [r["event_id"] for r in receiver.records()] == ["ev-slow", "ev-dated"]

            # 410 Gone: a dead letter after one attempt, however young; replayed, it is delivered.
            receiver.answer_file.write_text("410")
            outbox.add("ev-gone", quality_body(3), clock.ms)
            stats = await deliverer.drain()
            assert stats["dead"] == 1 and stats["pending"] == 0
            (dead,) = outbox.dead_letters()
            assert dead.event_id == "ev-gone" and dead.attempts == 1 and "410" in (dead.last_error or "")
            clock.ms += 8 * DAY_MS
            await deliverer.drain()
            assert [a["status"] for a in await answered()].count(410) == 1  # never tried again by itself
            receiver.answer_file.unlink()
            assert outbox.replay(["ev-gone"], clock.ms) == 1
            assert (await deliverer.drain())["delivered"] == 3
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            db.close()
    assert [r["event_id"] for r in receiver.records()] == ["ev-slow", "ev-dated", "ev-gone"]
