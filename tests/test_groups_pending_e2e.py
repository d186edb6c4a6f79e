"""A group message that reaches a member before its sender's key, over a real relay (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import uuid

from cove.client.core import Outgoing
from cove.client.events import Undecryptable
from cove.client.group_client import Groups
from test_groups_e2e import group_texts


async def test_a_message_that_came_before_its_key_appears_once_when_the_key_comes(users):
    alice, bob = [await users.register(n) for n in ("alice", "bob")]
    groups = Groups(alice)
    group = await groups.create([bob.core.account_id])
    await bob.inbox()
    # alice's key share to bob is delayed: her session's key is counted as his, and sent only later
    await groups.refresh(group)
    key = alice.core.groups.sender_key(group)
    alice.core.groups.key_shared(key, bob.core.account_id, [bob.core.device_id])
    await groups.send_text(group, "before the key")

    [waiting] = [e for e in await bob.inbox() if isinstance(e, Undecryptable)]
    assert "kept until its key comes" in waiting.reason
    assert bob.core.groups.db.messages(group) == []
    await alice.send(Outgoing(bob.core.account_id, uuid.uuid4().hex, json.dumps(key.payload()).encode()))
    assert group_texts(await bob.inbox(), group) == ["before the key"]
    assert await bob.inbox() == []
    assert [m.text for m in bob.core.groups.db.messages(group)] == ["before the key"]
