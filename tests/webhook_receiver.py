"""A business's webhook endpoint, as a separate process for the tests: checks what a careful receiver checks.

    python tests/webhook_receiver.py --port P --secret S --verify-token T --out FILE [--down-file PATH]
        [--answer-file PATH]

- GET ``/``: Meta's handshake; echoes ``hub.challenge`` as plain text when the verify token matches, else 403.
- POST ``/``: 503 while ``--down-file`` exists (an outage: nothing checked, nothing recorded); while
  ``--answer-file`` exists, the answer its text names, e.g. ``429 120`` (status, then a ``Retry-After`` value:
  seconds or an HTTP-date) or ``410`` (nothing recorded either; each such attempt is listed in ``/answered``);
  401 unless both signatures match the raw body; a repeated ``X-Cove-Event-Id`` is answered 200 and only
  counted; a new event is appended to ``--out`` as one JSON line ``{"event_id", "attempt", "hub_signature",
  "body"}``.
- GET ``/answered``: ``[{"event_id", "attempt", "status"}]`` for the attempts the answer file answered.
- GET ``/stats``: the counters, as JSON (also the readiness probe).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from cove.business.gateway import signing


def make_app(
    secret: bytes, verify_token: str, out: Path, down_file: Path | None, answer_file: Path | None = None
) -> Starlette:
    stats = {"received": 0, "duplicates": 0, "rejected_signature": 0, "refused_down": 0, "answered": 0}
    seen: set[str] = set()
    answered: list[dict[str, object]] = []
    records = out.open("a")

    def chosen_answer(request: Request) -> Response | None:
        if answer_file is None:
            return None
        try:
            status, _, retry_after = answer_file.read_text().strip().partition(" ")
        except FileNotFoundError:
            return None
        stats["answered"] += 1
        answered.append(
            {
                "event_id": request.headers.get("X-Cove-Event-Id"),
                "attempt": int(request.headers.get("X-Cove-Delivery-Attempt", "0")),
                "status": int(status),
            }
        )
        headers = {"Retry-After": retry_after} if retry_after else None
        return PlainTextResponse("not now", status_code=int(status), headers=headers)

    async def handshake(request: Request) -> Response:
        params = request.query_params
        if params.get("hub.mode") != "subscribe" or params.get("hub.verify_token") != verify_token:
            return PlainTextResponse("wrong verify token", status_code=403)
        return PlainTextResponse(params.get("hub.challenge", ""))

    async def receive(request: Request) -> Response:
        if down_file is not None and down_file.exists():  # noqa: ASYNC240 - one stat() of a local file
            stats["refused_down"] += 1
            return PlainTextResponse("down", status_code=503)
        chosen = chosen_answer(request)
        if chosen is not None:
            return chosen
        body = await request.body()
        hub_header = request.headers.get("X-Hub-Signature-256")
        signed = signing.verify_hub_signature(secret, body, hub_header) and signing.verify_timestamped(
            secret, body, request.headers.get("X-Cove-Signature"), int(time.time())
        )
        if not signed:
            stats["rejected_signature"] += 1
            return PlainTextResponse("bad signature", status_code=401)
        event_id = request.headers["X-Cove-Event-Id"]
        if event_id in seen:
            stats["duplicates"] += 1
            return PlainTextResponse("duplicate")
        seen.add(event_id)
        stats["received"] += 1
        record = {
            "event_id": event_id,
            "attempt": int(request.headers["X-Cove-Delivery-Attempt"]),
            "hub_signature": hub_header,
            "body": json.loads(body),
        }
        records.write(json.dumps(record) + "\n")
        records.flush()
        return PlainTextResponse("ok")

    async def counters(_: Request) -> Response:
        return JSONResponse(stats)

    async def answers(_: Request) -> Response:
        return JSONResponse(answered)

    return Starlette(
        routes=[
            Route("/", handshake, methods=["GET"]),
            Route("/", receive, methods=["POST"]),
            Route("/stats", counters, methods=["GET"]),
            Route("/answered", answers, methods=["GET"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--verify-token", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--down-file", type=Path)
    parser.add_argument("--answer-file", type=Path)
    args = parser.parse_args()
    app = make_app(args.secret.encode(), args.verify_token, args.out, args.down_file, args.answer_file)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
