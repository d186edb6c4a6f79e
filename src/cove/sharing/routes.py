"""HTTP routes of the sharing gateway: what a partner sends back (its signed abuse signals)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from cove.context import Relay, get_relay
from cove.errors import error_responses
from cove.sharing import partner_keys, wire

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
