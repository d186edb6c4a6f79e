"""A group message's frame is encoded once for all its devices: each device's frame must be, byte for byte, the
frame of the same envelope read back from its queue."""

from __future__ import annotations

import dataclasses

import orjson

from cove.messaging.envelope import Envelope, EnvelopeKind, shared_wire


def test_a_fan_out_frame_is_the_frame_of_the_same_envelope_read_from_its_queue() -> None:
    message = Envelope(
        None, "", 0, EnvelopeKind.MEGOLM, "alice", 2, "m-1", b'\x00\xffcipher"text', 17, 99, None, 5, "g" * 32
    )
    rest = shared_wire(message)
    for queue_id, account, device in ((1, "bob", 1), (2**62, "carol", 3)):
        read_back = dataclasses.replace(message, id=queue_id, account_id=account, device_id=device)
        fanned_out = dataclasses.replace(read_back, wire_rest=rest)
        assert fanned_out.encoded() == read_back.encoded() == orjson.dumps(read_back.wire())
        assert orjson.loads(fanned_out.encoded())["id"] == queue_id


def test_a_pairwise_envelope_encodes_its_own_frame() -> None:
    envelope = Envelope(7, "bob", 1, EnvelopeKind.OLM_MESSAGE, "alice", 1, "m-2", b"abc", 1, 2)
    assert orjson.loads(envelope.encoded()) == envelope.wire()
