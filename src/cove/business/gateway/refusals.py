"""The relay's refusal of a business send as the Cloud API error the business is told, pure."""

from __future__ import annotations

from cove.business.errors import CloudApiError
from cove.client.transport import RelayError


def cloud_refusal(exc: RelayError) -> CloudApiError:
    """The Cloud API error the relay's refusal carries (a plain relay error becomes 131000 or 131026)."""
    cloud_error = exc.details.get("cloud_api") if isinstance(exc.details, dict) else None
    if cloud_error:
        retry = exc.details.get("retry_after")
        return CloudApiError(
            int(cloud_error["code"]),
            cloud_error.get("error_data", {}).get("details"),
            retry_after_ms=int(retry) * 1000 if retry else None,
        )
    if exc.status in (404, 410):
        return CloudApiError(131026, f"The recipient cannot receive this message ({exc.code}).")
    return CloudApiError(131000, f"The relay refused the message: {exc}")
