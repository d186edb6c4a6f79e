"""HTTP routes of the sharing gateway: what a partner sends back (its signed abuse signals), and how an erasure
a deleted account's owner was handed went."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from cove.context import Relay, get_relay
from cove.errors import ApiError, error_responses
from cove.sharing import erasure, partner_keys, wire

router = APIRouter(tags=["sharing"])


class SignalsTaken(BaseModel):
    batch_id: str
    sequence: int
    entries: int = Field(description="Signals taken (how many name a Cove account is not said)")


@router.post(
    "/v1/sharing/signals",
    status_code=202,
    response_model=SignalsTaken,
    responses=error_responses(400, 403, 409),
    summary="A partner's signed abuse signals: hashed numbers it banned for spam, with a reason",
    description="No bearer token: the caller is whoever holds the partner key registered (`cove share "
    "partner-key`) for the `sender` the batch names, and the Ed25519 signature over `batch` proves it. 400 "
    "`bad_batch` (not a SignalBatch), 403 `unknown_partner` or `bad_signature`, 409 `replayed_batch` (its "
    "`sequence` is not above the last one taken from that sender). A signal is one input to the registration "
    "gate and the detector, never a ban by itself; each is shown in the account's privacy view as received.",
)
async def take_signals(body: wire.SignedSignals, relay: Relay = Depends(get_relay)) -> SignalsTaken:
    batch = await partner_keys.receive(relay, body)
    return SignalsTaken(batch_id=batch.batch_id, sequence=batch.sequence, entries=len(batch.entries))


class ErasureStatus(BaseModel):
    event_id: str
    recipient: str = Field(description="Who was told to erase the account's data")
    state: Literal["requested", "sent", "acknowledged"] = Field(
        description="`requested`: no batch carried it yet; `sent`: a batch did; `acknowledged`: the recipient "
        "applied it and said so"
    )
    requested_at: int = Field(description="When the account was deleted (milliseconds since the epoch)")
    sent_at: int | None = Field(description="When the batch carrying it was written")
    batch_id: str | None = Field(description="That batch")
    acknowledged_at: int | None = Field(description="When the recipient applied it, as its acknowledgement says")


@router.get(
    "/v1/erasures/{event_id}",
    response_model=ErasureStatus,
    responses=error_responses(400, 404),
    summary="How an erasure went: requested, sent to its recipient, acknowledged",
    description="No bearer token: the account is gone. The event id, a random UUID4 from the deletion's answer "
    "(`DELETE /v1/accounts/me`), is the right to ask. 400 `bad_event_id` when it is not a UUID4 in lower case, "
    "404 `unknown_erasure` when no erasure has it.",
)
async def erasure_status(
    # The pattern is stated for clients; the check is the route's own, so a bad id gets its own code.
    event_id: Annotated[str, Path(json_schema_extra={"pattern": erasure.EVENT_ID.pattern})],
    relay: Relay = Depends(get_relay),
) -> ErasureStatus:
    if not erasure.EVENT_ID.fullmatch(event_id):
        raise ApiError(400, "bad_event_id", "an erasure's id is a UUID4 in lower case, as the deletion gave it")
    async with relay.engine.connect() as conn:
        found = await erasure.status(conn, event_id)
    if found is None:
        raise ApiError(404, "unknown_erasure", "no erasure has this id")
    return ErasureStatus(**found)
