"""Bearer-token authentication for HTTP routes and the WebSocket."""

from __future__ import annotations

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cove.accounts.storage import DeviceRecord
from cove.accounts.tokens import idle_expired
from cove.clock import now_ms
from cove.context import Relay, get_relay
from cove.errors import ApiError

_bearer = HTTPBearer(auto_error=False, description="The device token returned by POST /v1/registration")


def bearer_token(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


async def authenticate(relay: Relay, token: str | None) -> DeviceRecord:
    if not token:
        raise ApiError(401, "unauthenticated", "send 'Authorization: Bearer <device token>'")
    device = await relay.directory.authenticate(token)
    if device is None:
        raise ApiError(401, "unauthenticated", "the device token is unknown or was revoked")
    idle_days = relay.settings.token_idle_days
    if idle_expired(device.last_seen_at_ms, now_ms(), int(idle_days * 86_400_000)):
        raise ApiError(
            401, "token_expired", f"this device was not used for over {idle_days:g} days: register the number again"
        )
    # Every authenticated use counts as activity: it keeps the token alive and the registration lock held.
    relay.presence.connected(device.account_id, device.device_id)
    return device


async def current_device(
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer), relay: Relay = Depends(get_relay)
) -> DeviceRecord:
    return await authenticate(relay, credentials.credentials if credentials else None)
