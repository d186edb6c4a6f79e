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

Close codes: 4401 logged out or bad token, 4409 the same device connected elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from cove.accounts.auth import authenticate, bearer_token, current_device
from cove.accounts.storage import DeviceRecord
from cove.clock import now_ms
from cove.context import Relay, get_relay
from cove.errors import ApiError, error_responses
from cove.messaging import service, storage
from cove.messaging.envelope import Envelope
from cove.messaging.hub import CLOSE_LOGGED_OUT
from cove.messaging.models import SendRequest, SendResult

log = logging.getLogger("cove.websocket")
router = APIRouter(tags=["messaging"])

BACKLOG_PAGE = 200
MAX_BATCH_FRAMES = 256
_CLOSE = object()


@router.put(
    "/v1/messages/{account_id}",
    response_model=SendResult,
    responses=error_responses(400, 401, 403, 404, 409, 410, 413, 429),
    summary="Send one ciphertext per device of the recipient account",
    description="409 `device_mismatch` lists `missing_devices` and `extra_devices`; 410 `stale_devices` lists "
    "reinstalled devices. Fetch keys, fix the sessions and retry with the same client_message_id. A business "
    "account's send is checked against the business rules: a refusal is `business_rule` with `cloud_api`, the "
    "Cloud API error (its `code`, e.g. 131047 outside the 24 h window), and `Retry-After` when known.",
)
async def send(
    account_id: str,
    body: SendRequest,
    device: DeviceRecord = Depends(current_device),
    relay: Relay = Depends(get_relay),
) -> SendResult:
    return await service.send(relay, device, account_id, body)


class SocketStream:
    """What the hub hands envelopes to: an outbox drained by the connection's single writer."""

    def __init__(self) -> None:
        self.outbox: asyncio.Queue[Any] = asyncio.Queue()
        self.close_code = 1000
        self.close_reason = ""

    def offer(self, item: Envelope | dict[str, Any]) -> None:
        self.outbox.put_nowait(item)

    def close(self, code: int, reason: str) -> None:
        self.close_code, self.close_reason = code, reason
        self.outbox.put_nowait(_CLOSE)


@router.websocket("/v1/websocket")
async def websocket_stream(ws: WebSocket) -> None:
    relay: Relay = ws.app.state.relay
    await ws.accept()
    try:
        device = await authenticate(relay, bearer_token(ws.headers.get("authorization")))
    except ApiError as exc:
        await ws.send_text(orjson.dumps({"type": "error", **exc.body()}).decode())
        await ws.close(CLOSE_LOGGED_OUT, exc.message[:120])
        return
    key = (device.account_id, device.device_id)
    stream = SocketStream()
    relay.hub.attach(key, stream)
    relay.presence.connected(device.account_id, device.device_id)
    reader = asyncio.create_task(_read_frames(ws, relay, device, stream))
    try:
        await _pump(ws, relay, device, stream)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        relay.hub.detach(key, stream)
        reader.cancel()


async def _pump(ws: WebSocket, relay: Relay, device: DeviceRecord, stream: SocketStream) -> None:
    """The connection's only writer: the stored backlog in order, then whatever the hub offers.

    Whatever is ready at one moment leaves in one ``batch`` frame: one write and one client wake-up for
    many envelopes, which is most of the cost of a busy connection.
    """
    last_id = 0
    while True:
        async with relay.engine.connect() as conn:
            page = await storage.fetch_queue(conn, device.account_id, device.device_id, last_id, now_ms(), BACKLOG_PAGE)
        if page:
            await _send_frames(ws, [envelope.wire() for envelope in page])
            last_id = page[-1].id
        if len(page) < BACKLOG_PAGE:
            break
    await ws.send_text('{"type": "queue_empty"}')
    for frames_for in relay.connect_frames:
        await _send_frames(ws, await frames_for(relay, device))
    while True:
        ready = [await stream.outbox.get()]
        while not stream.outbox.empty() and len(ready) < MAX_BATCH_FRAMES:
            ready.append(stream.outbox.get_nowait())
        frames = []
        for item in ready:
            if item is _CLOSE:
                await _send_frames(ws, frames)
                await ws.close(stream.close_code, stream.close_reason)
                return
            if isinstance(item, Envelope):
                # Committed after we attached but also read in the backlog: already sent.
                if item.id <= last_id:
                    continue
                last_id = item.id
                item = item.wire()
            frames.append(item)
        await _send_frames(ws, frames)


async def _send_frames(ws: WebSocket, frames: list[dict[str, Any]]) -> None:
    # orjson: JSON encoding was the largest single cost of a busy socket with the standard library.
    if len(frames) == 1:
        await ws.send_text(orjson.dumps(frames[0]).decode())
    elif frames:
        await ws.send_text(orjson.dumps({"type": "batch", "frames": frames}).decode())


async def _read_frames(ws: WebSocket, relay: Relay, device: DeviceRecord, stream: SocketStream) -> None:
    try:
        async for text in ws.iter_text():
            try:
                frame = orjson.loads(text)
                kind = frame.get("type") if isinstance(frame, dict) else None
                if kind == "ack":
                    ids = [int(i) for i in frame.get("ids", [])]
                    if ids:
                        # Not awaited: acks ride the next group commit while we keep reading.
                        relay.writer.submit_ack(device.account_id, device.device_id, ids)
                elif kind == "send":
                    # Not awaited either: the answer is offered when the commit lands, so one socket can
                    # have many sends in one group commit while their order is kept.
                    await _submit_send(relay, device, frame, stream)
                else:
                    raise ApiError(400, "unknown_frame", f"unknown frame type {kind!r}")
            except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
                stream.offer({"type": "error", "error": {"code": "bad_frame", "message": str(exc)[:200]}})
            except ApiError as exc:
                stream.offer({"type": "error", **exc.body()})
    except WebSocketDisconnect:
        pass
    finally:
        stream.close(1000, "")


async def _submit_send(relay: Relay, device: DeviceRecord, frame: dict[str, Any], stream: SocketStream) -> None:
    request_id = frame.get("request_id")

    def answer(status: int, body: dict[str, Any]) -> None:
        stream.offer({"type": "response", "request_id": request_id, "status": status, "body": body})

    try:
        request = SendRequest.model_validate(frame)
        job = await service.prepare(relay, device, str(frame.get("to", "")), request)
    except ValidationError as exc:
        error = ApiError(400, "invalid_request", str(exc.errors()[0].get("msg", "invalid send frame")))
        answer(error.status, error.body())
        return
    except ApiError as exc:
        answer(exc.status, exc.body())
        return

    def committed(future: asyncio.Future[list[Envelope] | None]) -> None:
        if future.cancelled() or future.exception() is not None:
            answer(503, {"error": {"code": "unavailable", "message": "the relay could not store the message"}})
        else:
            answer(200, service.result_of(job, future.result()).model_dump())

    relay.writer.submit_send(job).add_done_callback(committed)
