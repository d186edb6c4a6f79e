"""Helpers for tests of the gateway's send parser: edit a Cloud API body at a path, and take the refusal."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cove.business.errors import CloudApiError
from cove.business.gateway.cloud import parse_send


def changed(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:  # noqa: ANN401
    """A deep copy of ``body`` with the value at the dotted ``path`` replaced (``...`` deletes it)."""
    result = copy.deepcopy(body)
    *parents, last = path.split(".")
    node: Any = result
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return result


def refusal(body: Any) -> CloudApiError:  # noqa: ANN401
    """The Graph error ``parse_send`` refuses ``body`` with (the test fails if it is accepted)."""
    with pytest.raises(CloudApiError) as caught:
        parse_send(body)
    return caught.value
