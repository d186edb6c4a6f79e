"""The relay health page: connected devices, messages per second, queue depth and delivery latency (p50, p99)
over a chosen span, summed over the relay's processes (cove.fleet.health reads the ``relay_health`` rows each
process writes), and the newest figures of the fleet and of each process."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from cove.clock import now_ms
from cove.console.auth import Operator
from cove.console.charts import spec
from cove.console.figures.timeline import HOUR_MS, Series
from cove.console.pages import engine_of, render
from cove.errors import ApiError
from cove.fleet.health import Figures, health_series, latest

router = APIRouter()
MINUTE_MS = 60_000


class Span(NamedTuple):
    button: str
    title: str
    span_ms: int
    bucket_ms: int


# The spans an operator picks from, each with the bucket that keeps it to 60-90 points.
SPANS = {
    "1h": Span("1 hour", "the last hour", HOUR_MS, MINUTE_MS),
    "6h": Span("6 hours", "the last 6 hours", 6 * HOUR_MS, 5 * MINUTE_MS),
    "24h": Span("24 hours", "the last 24 hours", 24 * HOUR_MS, 20 * MINUTE_MS),
    "7d": Span("7 days", "the last 7 days", 7 * 24 * HOUR_MS, 2 * HOUR_MS),
}


def _label(ms: int, span_ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%H:%M" if span_ms <= 24 * HOUR_MS else "%m-%d %H:%M")


def charts(series: list[Figures], span_ms: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, title, spec) of each chart; buckets no process wrote in are not on the axis."""
    labels = [_label(f.start_ms, span_ms) for f in series]
    x = "time (UTC)"

    return [
        (
            "health-connected",
            "Connected devices",
            spec("line", labels, [Series("connected", [f.connected for f in series])], x, "devices"),
        ),
        (
            "health-messages",
            "Messages per second",
            spec(
                "line",
                labels,
                [
                    Series("accepted", [round(f.accepted_per_s, 2) for f in series]),
                    Series("delivered", [round(f.delivered_per_s, 2) for f in series]),
                ],
                x,
                "messages/s",
            ),
        ),
        (
            "health-queue",
            "Queue depth",
            spec("line", labels, [Series("waiting", [f.queue_depth for f in series])], x, "envelopes"),
        ),
        (
            "health-latency",
            "Delivery latency",
            spec(
                "line",
                labels,
                [Series("p50", [f.p50_ms for f in series]), Series("p99", [f.p99_ms for f in series])],
                x,
                "milliseconds",
            ),
        ),
    ]


async def _context(request: Request, span: str) -> dict[str, Any]:
    if span not in SPANS:
        raise ApiError(400, "unknown_span", f"span must be one of {', '.join(SPANS)}")
    chosen = SPANS[span]
    now = now_ms()
    async with engine_of(request).connect() as conn:
        series = await health_series(conn, now - chosen.span_ms, chosen.bucket_ms, now)
        newest = await latest(conn, now=now)
    return {"span": span, "spans": SPANS, "chosen": chosen, "charts": charts(series, chosen.span_ms), "latest": newest}


@router.get("/health")
async def health_page(request: Request, operator: Operator, span: str = Query("1h")) -> HTMLResponse:
    return render(request, "health.html", title="Relay health", **await _context(request, span))


@router.get("/health/figures")
async def health_figures(request: Request, operator: Operator, span: str = Query("1h")) -> HTMLResponse:
    return render(request, "health_figures.html", **await _context(request, span))
