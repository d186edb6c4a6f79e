"""HTTP send route and the WebSocket stream.

WebSocket ``/v1/websocket`` (header ``Authorization: Bearer <device token>``), JSON text frames:

server → client
  ``{"type": "envelope", "id", "kind", "sender", "sender_device", "client_message_id", "body", "server_ts"}``
      queued envelopes first, oldest first, then live ones; ``kind`` 5 is a delivery receipt.
  ``{"type": "queue_empty"}`` once the backlog has been sent.
  ``{"type": "notice", "notice": {...}}`` a privacy notice due for this account (on connect, or when its wave opens).
  ``{"type": "response", "request_id", "status", "body"}`` answers a ``send`` frame.
  ``{"type": "error", "error": {"code", "message"}}`` for a frame the relay could not read.
  ``{"type": "batch", "frames": [...]}`` several of the above, in order, when more than one is ready.
client → server
  ``{"type": "ack", "ids": [...]}`` the relay deletes these envelopes and receipts the senders.
  ``{"type": "send", "request_id", "to", "client_message_id", "messages": [...]}`` same as the HTTP send.

Close codes (the reason starts with a machine-readable word): 4401 logged out or bad token, 4409 the same device
connected elsewhere, 4429 the account has ``max_sockets_per_account`` sockets open, 4408 the client did not read
what was sent to it (its outbox filled up; ``ws_outbox_frames``, ``ws_outbox_bytes``), 4400 too many frames the
relay could not read (``ws_bad_frames``), 1009 a frame larger than ``ws_max_frame_bytes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable
from typing import Any

import orjson
from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from pydantic import TypeAdapter, ValidationError

from cove.accounts.auth import authenticate, bearer_token, current_device
from cove.accounts.storage import DeviceRecord
from cove.activity import Withheld
from cove.clock import now_ms
from cove.context import Relay, get_relay
from cove.errors import ApiError, error_responses
from cove.fleet.health_recorder import Recorder
from cove.limits.rules import Bucket, Limit, take
from cove.messaging import service, storage
from cove.messaging.envelope import RECEIPTED_KINDS, Envelope
from cove.messaging.hub import CLOSE_BAD_FRAMES, CLOSE_LOGGED_OUT, CLOSE_TOO_MANY_SOCKETS, Rescan
from cove.messaging.models import AckFrame, RequestId, SendFrame, SendRequest, SendResult
from cove.messaging.stream import SocketStream
from cove.messaging.writer import SendJob

log = logging.getLogger("cove.websocket")
router = APIRouter(tags=["messaging"])

BACKLOG_PAGE = 200
MAX_BATCH_FRAMES = 256
MAX_BATCH_BYTES = 512 * 1024


@router.put(
    "/v1/messages/{account_id}",
    response_model=SendResult,
    responses=error_responses(400, 401, 403, 404, 409, 410, 413, 429),
    summary="Send one ciphertext per device of the recipient account",
    description="409 `device_mismatch` lists `missing_devices` and `extra_devices`; 410 `stale_devices` lists "
    "reinstalled devices. Fetch keys, fix the sessions and retry with the same client_message_id. A business "
    "account's send is checked against the business rules: a refusal is `business_rule` with `cloud_api`, the "
    "Cloud API error (its `code`, e.g. 131047 outside the 24 h window), and `Retry-After` when known. A forwarded "
    "message beyond the forward limits is 429 `forward_limit` (with `limit`, the chats one forward may reach).",
)
async def send(
    account_id: str,
    body: SendRequest,
    device: DeviceRecord = Depends(current_device),
    relay: Relay = Depends(get_relay),
) -> SendResult:
    return await service.send(relay, device, account_id, body)


@router.websocket("/v1/websocket")
async def websocket_stream(ws: WebSocket) -> None:
    relay: Relay = ws.app.state.relay
    await ws.accept()
    try:
        device = await authenticate(relay, bearer_token(ws.headers.get("authorization")))
    except ApiError as exc:
        await _refuse(ws, CLOSE_LOGGED_OUT, exc)
        return
    # Read once, and a socket may live for hours: its handshake headers (a kilobyte) are not kept all along.
    ws.scope["headers"].clear()
    if not relay.open_sockets.acquire(device.account_id):
        limit = relay.settings.max_sockets_per_account
        refusal = ApiError(429, "too_many_connections", f"this account already has {limit} open sockets")
        await _refuse(ws, CLOSE_TOO_MANY_SOCKETS, refusal)
        return
    try:
        await _serve(ws, relay, device)
    finally:
        relay.open_sockets.release(device.account_id)


def websocket_asgi(scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:  # noqa: ANN401 - ASGI
    """The same endpoint as a bare ASGI app: ``cove serve`` runs it without the application's middleware and
    routing, whose frames would otherwise stay alive as long as each socket (see ``cove.serving``). Not a
    coroutine itself, for the same reason: one frame fewer per socket."""
    return websocket_stream(WebSocket(scope, receive, send))


async def _refuse(ws: WebSocket, code: int, error: ApiError) -> None:
    await ws.send_text(orjson.dumps({"type": "error", **error.body()}).decode())
    await ws.close(code, f"{error.code}: {error.message}"[:120])


async def _serve(ws: WebSocket, relay: Relay, device: DeviceRecord) -> None:
    """Two tasks per connection, the ASGI task writing (``_pump``) and a reader: an idle socket costs the relay
    their coroutines, so there is no third task watching for the close; the stream stops the writer instead."""
    settings = relay.settings
    key = (device.account_id, device.device_id)
    stream = SocketStream(settings.ws_outbox_frames, settings.ws_outbox_bytes)
    await relay.hub.attach(key, stream)
    reader = asyncio.create_task(_read_frames(ws, relay, device, stream))
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(None) as deadline:

            def stop_writing() -> None:
                # A graceful close: what was queued before it leaves first, if the client reads it in time.
                delay = 0 if stream.aborted else settings.ws_close_timeout_seconds
                deadline.reschedule(loop.time() + delay)

            stream.on_close = stop_writing
            await _pump(ws, relay, device, stream)
    except TimeoutError:
        if not stream.aborted:
            log.info(
                "closed the socket of %s: %s, and its client did not read what was queued in time",
                key,
                stream.close_reason,
            )
    except _GONE:
        pass
    except Exception:
        log.exception("socket writer failed")
    finally:
        stream.on_close = None
        reader.cancel()
        relay.hub.detach(key, stream)
    if stream.aborted:
        log.info("closed the socket of %s: %s", key, stream.close_reason)
    with contextlib.suppress(*_GONE):
        await ws.close(stream.close_code, stream.close_reason)


# What sending to a socket whose client has gone raises.
_GONE = (WebSocketDisconnect, RuntimeError)


async def _pump(ws: WebSocket, relay: Relay, device: DeviceRecord, stream: SocketStream) -> None:
    """The connection's only writer: the stored backlog in order, then whatever the hub offers, until closed.

    Whatever is ready at one moment leaves in one ``batch`` frame: one write and one client wake-up for
    many envelopes, which is most of the cost of a busy connection. An envelope can arrive twice (read in
    the backlog and offered live, or offered live and read again by a re-read): ``sent`` leaves it out.
    Queue ids are not in commit order across processes, so they cannot serve as a watermark.
    """
    sent = _Sent(relay.hub.health)
    await _send_unsent(ws, relay, device, sent)
    await ws.send_text('{"type": "queue_empty"}')
    for frames_for in relay.connect_frames:
        await _send_frames(ws, [orjson.dumps(frame) for frame in await frames_for(relay, device)])
    while ready := await stream.next_batch(MAX_BATCH_FRAMES):
        frames: list[bytes] = []
        now = now_ms()  # read once for the batch: these frames leave together
        for item in ready:
            if isinstance(item, Rescan):
                await _send_frames(ws, frames)
                frames = []
                await _send_unsent(ws, relay, device, sent)
            elif isinstance(item, Envelope):
                if sent.add(item.id, item.kind, item.server_ts_ms, now):  # type: ignore[arg-type]
                    frames.append(item.encoded())
            elif item["type"] != "envelope" or sent.add(item["id"], item["kind"], item["server_ts"], now):
                frames.append(orjson.dumps(item))
        await _send_frames(ws, frames)


class _Sent:
    """The ids of the envelopes this socket sent lately. Bounded: an envelope sent long ago and read again
    goes out again, which the client's exactly-once handling absorbs (and it was not acked yet).

    Every envelope the socket writes passes here once, so here the hub's health figures count deliveries."""

    LIMIT = 4096
    __slots__ = ("_ids", "_health", "_connected_at")  # one per open socket

    def __init__(self, health: Recorder) -> None:
        self._ids: dict[int, None] = {}
        self._health = health
        self._connected_at = now_ms()

    def add(self, queue_id: int, kind: int, server_ts_ms: int, now: int) -> bool:
        """False if this id was sent already."""
        if queue_id in self._ids:
            return False
        if len(self._ids) >= self.LIMIT:
            del self._ids[next(iter(self._ids))]
        self._ids[queue_id] = None
        if kind in RECEIPTED_KINDS:
            self._health.delivered(server_ts_ms, self._connected_at, now)
        return True


async def _send_unsent(ws: WebSocket, relay: Relay, device: DeviceRecord, sent: _Sent) -> None:
    """The device's whole queue, oldest first, a page at a time, less what this socket already sent."""
    after = 0
    while True:
        now = now_ms()
        async with relay.engine.connect() as conn:
            page = await storage.fetch_queue(conn, device.account_id, device.device_id, after, now, BACKLOG_PAGE)
        fresh = [e for e in page if sent.add(e.id, e.kind, e.server_ts_ms, now)]  # type: ignore[arg-type]
        await _send_frames(ws, [envelope.encoded() for envelope in fresh])
        if len(page) < BACKLOG_PAGE:
            return
        after = page[-1].id  # type: ignore[assignment]


async def _send_frames(ws: WebSocket, frames: list[bytes]) -> None:
    """Encoded frames in ``batch`` frames of at most about MAX_BATCH_BYTES: a backlog page of large envelopes in
    one frame would be larger than clients accept (the SDK takes 1 MiB) and held whole in memory while sent."""
    batch: list[bytes] = []
    size = 0
    for frame in frames:
        if batch and size + len(frame) > MAX_BATCH_BYTES:
            await _send_batch(ws, batch)
            batch, size = [], 0
        batch.append(frame)
        size += len(frame)
    await _send_batch(ws, batch)


async def _send_batch(ws: WebSocket, frames: list[bytes]) -> None:
    # Frames come encoded (orjson; a group message's once for all its devices, Envelope.encoded): JSON encoding
    # was the largest single cost of a busy socket with the standard library.
    if len(frames) == 1:
        await ws.send_text(frames[0].decode())
    elif frames:
        await ws.send_text((b'{"type":"batch","frames":[%s]}' % b",".join(frames)).decode())


class _BadFrame(Exception):
    """A frame the relay could not read, and what the client is told about it."""

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__(answer)
        self.answer = answer


def _release(semaphore: asyncio.Semaphore, _: asyncio.Future[Any]) -> None:
    semaphore.release()


def _error(code: str, message: str) -> _BadFrame:
    return _BadFrame({"type": "error", "error": {"code": code, "message": message[:200]}})


def _response(request_id: object, status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"type": "response", "request_id": request_id, "status": status, "body": body}


async def _read_frames(ws: WebSocket, relay: Relay, device: DeviceRecord, stream: SocketStream) -> None:
    """Reads frames until the client closes. Sends and acks are not awaited (they ride the next group commit
    while reading goes on) but at most ``ws_in_flight`` are, after which reading waits: the client is slowed
    by TCP, not buffered here. A client that keeps sending unreadable frames is closed (4400).

    A send's checks (``service.prepare``: the recipient's devices, the outbound checks, a business's rules) may
    await the database, so they run concurrently, each send in a task of its own (bounded by the same
    ``ws_in_flight``): awaited here one at a time, they would hold a busy socket to one send per round trip.
    The sends still reach the writer in the order their frames came (:class:`_InOrder`), so a recipient's
    queue keeps them in the sender's order (an Olm message must not overtake the pre-key message before it)."""
    settings = relay.settings
    in_flight = asyncio.Semaphore(settings.ws_in_flight)
    bad_frames = Limit(settings.ws_bad_frames, settings.ws_bad_frames_per_second)
    budget: Bucket | None = None
    order = _InOrder()

    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            await in_flight.acquire()
            try:
                future = _submit(relay, device, message.get("text"), stream, order)
            except _BadFrame as exc:
                in_flight.release()
                budget, wait = take(budget, bad_frames, 1, time.monotonic())
                if wait > 0:
                    stream.close(CLOSE_BAD_FRAMES, "bad_frames: too many frames the relay could not read")
                    return
                stream.offer(exc.answer)
            else:
                if future is None:
                    in_flight.release()
                else:
                    future.add_done_callback(functools.partial(_release, in_flight))  # no closure held while idle
    finally:
        stream.close(1000, "")
        order.cancel()


class _InOrder:
    """A socket's sends in flight: each is checked in its own task, and hands its job to the writer only after
    the send before it has (or has been refused)."""

    def __init__(self) -> None:
        self._last: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, check: Awaitable[Any], submit: Any) -> asyncio.Task[Any]:  # noqa: ANN401 - a callback
        """Run ``check``; then, in turn, ``submit(its result)``, which returns the commit to wait for (or None)."""
        before, turn = self._last, asyncio.get_running_loop().create_future()
        self._last = turn
        task = asyncio.create_task(self._run(check, submit, before, turn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    async def _run(
        check: Awaitable[Any], submit: Any, before: asyncio.Future[None] | None, turn: asyncio.Future[None]
    ) -> None:
        try:
            checked = await check
            if before is not None:
                await asyncio.shield(before)
            commit = submit(checked)
        finally:
            if not turn.done():
                turn.set_result(None)
        if commit is not None:
            with contextlib.suppress(Exception):  # its callback answers the client
                await commit

    def cancel(self) -> None:
        """The socket is gone: sends still being checked are dropped (the client sends them again); those handed
        to the writer are committed anyway."""
        for task in list(self._tasks):
            task.cancel()


def _submit(
    relay: Relay, device: DeviceRecord, text: str | None, stream: SocketStream, order: _InOrder
) -> asyncio.Future[Any] | None:
    """Hand one client frame on; returns what to wait for before its slot is free, or None."""
    if text is None:
        raise _error("bad_frame", "frames are JSON text")
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _error("bad_frame", str(exc)) from exc
    kind = frame.get("type") if isinstance(frame, dict) else None
    if kind == "ack":
        try:
            ack = AckFrame.model_validate(frame)
        except ValidationError as exc:
            raise _error("bad_frame", f"ack: {_problem(exc)}") from exc
        return relay.writer.submit_ack(device.account_id, device.device_id, ack.ids) if ack.ids else None
    if kind == "send":
        return _submit_send(relay, device, frame, stream, order)
    raise _error("unknown_frame", f"unknown frame type {str(kind)[:40]!r}")


def _problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg', 'invalid')}"


def _submit_send(
    relay: Relay, device: DeviceRecord, frame: dict[str, Any], stream: SocketStream, order: _InOrder
) -> asyncio.Future[Any]:
    """Not awaited: the answer is offered when the commit lands (or when a check refuses the send), so one
    socket can have many sends checked at once and in one group commit while their order is kept."""
    try:
        request = SendFrame.model_validate(frame)
    except ValidationError as exc:
        error = ApiError(400, "invalid_request", _problem(exc))
        raise _BadFrame(_response(_request_id(frame), error.status, error.body())) from exc

    async def check() -> SendJob | None:
        try:
            return await service.prepare(relay, device, request.to, request)
        except ApiError as exc:
            stream.offer(_response(request.request_id, exc.status, exc.body()))
        except Withheld:
            stream.offer(_response(request.request_id, 200, service.withheld_result(request).model_dump()))
        except Exception:
            log.exception("a send's checks failed")
            stream.offer(_response(request.request_id, 503, _UNAVAILABLE))
        return None

    def submit(job: SendJob | None) -> asyncio.Future[list[Envelope] | None] | None:
        if job is None:
            return None

        def committed(future: asyncio.Future[list[Envelope] | None]) -> None:
            if future.cancelled() or future.exception() is not None:
                stream.offer(_response(request.request_id, 503, _UNAVAILABLE))
            else:
                stream.offer(_response(request.request_id, 200, service.result_of(job, future.result()).model_dump()))

        future = relay.writer.submit_send(job)
        future.add_done_callback(committed)
        return future

    return order.start(check(), submit)


_UNAVAILABLE = {"error": {"code": "unavailable", "message": "the relay could not store the message"}}


_REQUEST_ID: TypeAdapter[Any] = TypeAdapter(RequestId)


def _request_id(frame: dict[str, Any]) -> object:
    """The frame's request id, to echo in the answer, if it is one (an invalid one is not echoed)."""
    try:
        return _REQUEST_ID.validate_python(frame.get("request_id"))
    except ValidationError:
        return None
