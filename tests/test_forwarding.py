"""Forwarding without a relay: the shared rules (cove.protocol.forwarding), the header's syntax on the send bodies,
the frame the recipient gets, the relay's check over a real limit store, and what the client keeps."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest
from pydantic import ValidationError

from cove.activity import Action, Outbound
from cove.client import forwards
from cove.client.events import AttachmentReceived, MessageReceived
from cove.client.store import ClientStore
from cove.config import Settings
from cove.errors import ApiError
from cove.groups.models import GroupMessage
from cove.limits.limiters import Limits
from cove.limits.table import table
from cove.messaging.envelope import Envelope, EnvelopeKind, shared_wire
from cove.messaging.models import SendRequest
from cove.protocol import forwarding
from cove.safety import forwarding as relay_forwarding

BATCH = "0123456789abcdef0123456789abcdef"


def test_five_chats_at_once_and_one_for_a_message_forwarded_five_times_or_more():
    assert [forwarding.limit(c) for c in range(8)] == [5, 5, 5, 5, 5, 1, 1, 1]


def test_labels_and_counts():
    assert [forwarding.label(c) for c in (0, 1, 4, 5, 900)] == [
        None,
        "Forwarded",
        "Forwarded",
        "Forwarded many times",
        "Forwarded many times",
    ]
    assert forwarding.next_count(0) == 1 and forwarding.next_count(forwarding.MAX_COUNT) == forwarding.MAX_COUNT
    assert forwarding.BATCH.fullmatch(forwarding.new_batch())
    assert forwarding.new_batch() != forwarding.new_batch()


@pytest.mark.parametrize(
    ("count", "batch"),
    [(0, BATCH), (forwarding.MAX_COUNT + 1, BATCH), (True, BATCH), ("1", BATCH), (1, "ABCDEF0123456789"), (1, "ab")],
)
def test_a_header_out_of_syntax_is_refused_by_the_sdk_and_by_the_relay(count, batch):
    with pytest.raises(forwarding.InvalidForward):
        forwarding.header(count, batch)
    body = {"client_message_id": "m", "body": "AAAA", "forward": {"count": count, "batch": batch}}
    with pytest.raises(ValidationError):
        GroupMessage.model_validate(body)
    message = {"device_id": 1, "registration_id": 1, "kind": 1, "body": "AAAA"}
    with pytest.raises(ValidationError):
        SendRequest.model_validate({**body, "messages": [message]})


def test_the_frame_carries_the_count_never_the_batch_and_a_shared_group_frame_too():
    plain = Envelope(7, "bob", 1, EnvelopeKind.OLM_MESSAGE, "alice", 1, "m", b"abc", 1, 2)
    assert "forward" not in plain.wire()
    forwarded = Envelope(7, "bob", 1, EnvelopeKind.OLM_MESSAGE, "alice", 1, "m", b"abc", 1, 2, forward_count=3)
    assert orjson.loads(forwarded.encoded())["forward"] == {"count": 3}
    fields = (EnvelopeKind.MEGOLM, "alice", 1, "m", b"abc", 1, 2, None, 9, "a" * 32, 6)
    shared = Envelope(8, "bob", 1, *fields, shared_wire(Envelope(None, "", 0, *fields)))
    assert orjson.loads(shared.encoded()) == {**shared.wire(), "forward": {"count": 6}}
    assert forwarding.count_in_frame(orjson.loads(shared.encoded())) == 6


@pytest.mark.parametrize("frame", [{}, {"forward": 3}, {"forward": {"count": "5"}}, {"forward": {"count": -1}}])
def test_a_frame_without_a_count_in_range_shows_no_label(frame):
    assert forwarding.count_in_frame(frame) == 0


def relay_with(**settings: object) -> SimpleNamespace:
    """What the check reads of a Relay: its limits, over this process's store."""
    return SimpleNamespace(limits=Limits(table(Settings(**settings)), clock=lambda: 1000.0))


def outbound(chat: str, count: int, batch: str | None = BATCH, sender: str = "alice") -> Outbound:
    return Outbound(Action.MESSAGE, sender, 1, False, chat, (chat,), 1, 0, forward_count=count, forward_batch=batch)


async def test_the_check_counts_distinct_chats_of_one_batch_and_ignores_originals():
    relay = relay_with()
    for chat in ("b", "c", "d", "e", "f", "b"):  # a retried chat is not another chat
        await relay_forwarding.check(relay, outbound(chat, 1))
    with pytest.raises(ApiError) as refused:
        await relay_forwarding.check(relay, outbound("g", 1))
    assert (refused.value.status, refused.value.code, refused.value.details["limit"]) == (429, "forward_limit", 5)
    await relay_forwarding.check(relay, outbound("g", 1, batch="f" * 32))  # another action
    await relay_forwarding.check(relay, outbound("g", 1, sender="bob"))  # another sender's batch
    for chat in "hijklmnop":
        await relay_forwarding.check(relay, outbound(chat, 0, batch=None))  # not forwarded


async def test_a_frequently_forwarded_message_costs_five_from_the_accounts_bucket():
    relay = relay_with(forward_bucket_size=10)
    # The relay sees the count after this forward: a header of 5 is a message forwarded 4 times before (5 chats).
    for chat in "bcde":
        await relay_forwarding.check(relay, outbound(chat, 5, batch="0" * 32))
    relay = relay_with(forward_bucket_size=10)
    await relay_forwarding.check(relay, outbound("b", 6, batch="1" * 32))
    with pytest.raises(ApiError) as one_chat:
        await relay_forwarding.check(relay, outbound("c", 6, batch="1" * 32))
    assert one_chat.value.details["limit"] == 1
    await relay_forwarding.check(relay, outbound("c", 6, batch="2" * 32))
    with pytest.raises(ApiError) as bucket:
        await relay_forwarding.check(relay, outbound("d", 6, batch="3" * 32))
    assert (bucket.value.code, bucket.value.headers["Retry-After"]) == ("rate_limited", "181")


@pytest.fixture
def store(tmp_path):
    made = ClientStore(tmp_path / "state.db")
    yield made
    made.close()


def test_the_client_keeps_the_count_of_the_message_its_envelope_carries_and_a_files_pointer(store):
    pointer = {"id": "a" * 32, "key": "k", "digest": "d" * 64, "size": 3, "mime": "text/plain", "name": "n.txt"}
    frame = {"client_message_id": "m1", "forward": {"count": 2}}
    events = [
        MessageReceived("alice", 1, "m1", "hi", 0),
        MessageReceived("alice", 1, "late", "read now, its key came", 0),
        AttachmentReceived("alice", 1, "f1f1f1f1", pointer, "cap", 0),
    ]
    forwards.keep_received(store, frame, events)
    assert forwards.count_of(store, "alice", "m1") == 2
    assert forwards.count_of(store, "alice", "late") == 0  # not the envelope's own message
    store.add_message("alice", "in", "f1f1f1f1", "[file n.txt, 3 bytes] cap", 0, "received")
    [found] = forwards.find(store, "f1f1")
    assert (found.attachment, found.caption, found.count, found.group) == (pointer, "cap", 0, False)


def test_a_message_is_found_by_the_start_of_its_id_in_one_to_one_and_group_chats(store):
    store.add_message("alice", "in", "abcd1234", "hello", 0, "received")
    store.connection.execute(
        "INSERT INTO group_messages (group_id, sender_account, direction, client_message_id, text, sent_at) "
        "VALUES ('g', 'bob', 'in', 'abcd5678', 'in the group', 0)"
    )
    forwards.keep(store, "g", "abcd5678", 5)
    assert {o.text for o in forwards.find(store, "abcd")} == {"hello", "in the group"}
    [group] = forwards.find(store, "abcd5")
    assert (group.chat, group.group, group.count, group.limit) == ("g", True, 5, 1)
    assert forwards.find(store, "abc") == [] and forwards.find(store, "ab%_") == []


async def test_relays_of_a_fleet_count_one_forward_action_together_in_redis(redis_env):
    settings = Settings(
        redis_url=redis_env["COVE_REDIS_URL"],
        redis_prefix=redis_env["COVE_REDIS_PREFIX"],
        redis_timeout_seconds=float(redis_env["COVE_REDIS_TIMEOUT_SECONDS"]),
    )
    fleet = [SimpleNamespace(limits=Limits.from_settings(settings)) for _ in range(2)]
    try:
        for i, chat in enumerate("bcdef"):
            await relay_forwarding.check(fleet[i % 2], outbound(chat, 1))
        await relay_forwarding.check(fleet[1], outbound("b", 1))  # a retry reaching the other relay
        with pytest.raises(ApiError) as refused:
            await relay_forwarding.check(fleet[0], outbound("g", 1))
        assert refused.value.code == "forward_limit"  # each relay alone saw 3 chats at most
    finally:
        for relay in fleet:
            await relay.limits.aclose()
