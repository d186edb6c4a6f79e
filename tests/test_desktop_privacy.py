"""The privacy center's pure rules (cove.desktop.privacy_view): which buttons a purpose offers, the call each one
makes, and how the relay's words are shown. The pages themselves are walked in tests/browser/test_app_privacy.py."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cove.consent.decision import Why
from cove.desktop import privacy_view as pv

BASES = ["consent", "legitimate_interest", "contract", "legal_obligation", None]


def relay_purpose(**fields) -> dict:
    """One purpose of ``GET /v1/me/privacy`` as the relay answers it."""
    return {
        "id": "ads",
        "title": "Ads",
        "description": "Ads elsewhere",
        "legal_basis": "consent",
        "recipients": ["Parent Platforms Inc."],
        "active": False,
        "why": "off_by_default",
        "objectable": False,
        "your_choice": None,
        "chosen_at": None,
        "method": None,
        "objected_at": None,
        "can_change": True,
        "deadline": None,
    } | fields


purposes = st.builds(
    relay_purpose,
    legal_basis=st.sampled_from(BASES),
    why=st.sampled_from([w.value for w in Why]),
    objectable=st.booleans(),
    your_choice=st.sampled_from([None, "in", "out"]),
    chosen_at=st.just(1_800_000_000_000),
    objected_at=st.sampled_from([None, 1_800_000_000_000]),
    can_change=st.booleans(),
    deadline=st.sampled_from([None, 1_800_000_000_000]),
)


@given(purposes)
def test_refusing_is_offered_wherever_accepting_is_and_every_button_makes_one_call(purpose):
    view = {"purposes": [purpose]}
    (shown,) = pv.purposes(view)
    assert shown.actions in ((), (pv.Action.ON, pv.Action.OFF), (pv.Action.OBJECT,))
    assert shown.actions or shown.note or purpose["objected_at"]  # no buttons: the page says why
    for action in pv.Action:
        if action in shown.actions:
            assert pv.call_for(view, "ads", action).method in ("choose", "withdraw", "object_to")
        else:
            with pytest.raises(pv.NotOffered):
                pv.call_for(view, "ads", action)


def test_turning_off_withdraws_what_was_turned_on_and_refuses_what_was_not():
    undecided = {"purposes": [relay_purpose()]}
    turned_on = {"purposes": [relay_purpose(your_choice="in", why="chose_in", active=True)]}
    assert pv.call_for(undecided, "ads", pv.Action.ON) == pv.Call("choose", ("in",))
    assert pv.call_for(undecided, "ads", pv.Action.OFF) == pv.Call("choose", ("out",))
    assert pv.call_for(turned_on, "ads", pv.Action.OFF) == pv.Call("withdraw")
    with pytest.raises(pv.NotOffered):
        pv.call_for(undecided, "elsewhere", pv.Action.ON)


def test_nothing_is_pressed_before_a_choice_and_the_choice_made_is():
    assert pv.purposes({"purposes": [relay_purpose()]})[0].pressed is None
    (on,) = pv.purposes({"purposes": [relay_purpose(your_choice="in", why="chose_in", method="opt_in")]})
    assert on.pressed is pv.Action.ON and on.why == "On: you turned it on."


def test_an_objectable_interest_offers_an_objection_once_and_a_strict_one_says_it_has_none():
    interest = relay_purpose(legal_basis="legitimate_interest", objectable=True, why="legitimate_interest")
    assert pv.purposes({"purposes": [interest]})[0].actions == (pv.Action.OBJECT,)
    assert pv.call_for({"purposes": [interest]}, "ads", pv.Action.OBJECT) == pv.Call("object_to")
    objected = interest | {"objected_at": 1_800_000_000_000, "why": "objected"}
    (shown,) = pv.purposes({"purposes": [objected]})
    assert shown.actions == () and shown.chosen and shown.chosen.startswith("You objected on")
    strict = interest | {"objectable": False}
    assert "no objection switch" in (pv.purposes({"purposes": [strict]})[0].note or "")


def test_a_closed_window_and_a_closed_purpose_offer_no_buttons():
    closed = relay_purpose(can_change=False, deadline=1_800_000_000_000)
    assert pv.purposes({"purposes": [closed]})[0].note.startswith("The time to change this choice ended on")
    minor = relay_purpose(why="closed_to_minors")
    assert "under 18" in pv.purposes({"purposes": [minor]})[0].note


def test_every_reason_the_relay_gives_has_words():
    assert set(pv.WHY) == {w.value for w in Why}


def test_an_operators_markdown_cannot_put_script_on_the_page_and_sits_under_the_pages_headings():
    html = pv.markdown("# Policy\n<script>alert(1)</script> [x](javascript:alert(1)) **kept**", top=4)
    assert "<script>" not in html and 'href="javascript' not in html
    assert "<h4>Policy</h4>" in html and "<strong>kept</strong>" in html


def test_disclosures_name_the_purpose_and_its_fields():
    view = {
        "purposes": [relay_purpose(id="account_linking", title="Account linking")],
        "disclosures": [
            {
                "recipient": "parent",
                "purpose": "account_linking",
                "categories": ["contact.phone_number", "device.vendor_device_id"],
                "batch_id": "b-1",
                "kind": "full",
                "at": 1_800_000_000_000,
            }
        ],
    }
    (row,) = pv.disclosures(view)
    assert (row.recipient, row.purpose, row.batch_id) == ("parent", "Account linking", "b-1")
    assert row.fields == "contact.phone_number, device.vendor_device_id"


def test_the_notice_says_each_optional_purpose_starts_off():
    notice_purpose = {
        "title": "Ads",
        "description": "d",
        "legal_basis": "consent",
        "optional": True,
        "default": "out",
        "window_days": None,
        "data_categories": ["contact.phone_number"],
        "recipients": [{"name": "Parent Platforms Inc.", "role": "independent_controller"}],
        "retention_days": 90,
    }
    (shown,) = pv.notice_purposes({"purposes": [notice_purpose]})
    assert shown.choice == "Off until you turn it on."
    assert shown.recipients == "Parent Platforms Inc. (independent controller)" and shown.retention == "90 days"


def test_a_revocation_says_why_and_whether_the_recipient_confirmed_it():
    view = {
        "purposes": [relay_purpose(id="ads", title="Ads")],
        "revocations": [
            {
                "recipient": "parent",
                "purpose": "ads",
                "reason": "withdrawn",
                "batch_id": "b-2",
                "at": 1,
                "acknowledged_at": None,
            },
            {
                "recipient": "parent",
                "purpose": "ads",
                "reason": "objected",
                "batch_id": "b-3",
                "at": 2,
                "acknowledged_at": 3,
            },
        ],
    }
    pending, done = pv.revocations(view)
    assert (pending.purpose, pending.reason, pending.acknowledged) == ("Ads", "you withdrew your consent", None)
    assert done.acknowledged == pv.when(3)


def test_erasure_receipts_keep_their_ids_and_say_what_is_not_known():
    receipts = [
        {"recipient": "parent", "event_id": "e-1", "requested_at": 1},
        {"recipient": "parent_processor", "event_id": "e-2", "requested_at": 1},
    ]
    known, unknown = pv.erasures("http://relay:8080/", receipts, {"e-1": "acknowledged", "e-2": None})
    assert known.state.startswith("done") and known.check_url == "http://relay:8080/v1/erasures/e-1"
    assert unknown.state == "not known yet: check it later"


def test_the_download_is_named_after_the_day_only():
    assert re.fullmatch(r"cove-my-data-\d{4}-\d{2}-\d{2}\.json", pv.export_file_name(1_800_000_000_000))
