"""Account-level webhooks, the other way, for every value they can carry: whatever the gateway's builders make of a
quality or messaging-limit change, or of a template's review status, is Meta's shape (a property: the sessions in
test_live_webhooks.py reach only some of these values)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from contracts.harness import against
from contracts.reference import webhooks
from cove.business.gateway import events
from cove.business.tiers import Tier
from cove.protocol.templates.review import ReviewStatus

WABA = "8757962c-3f1e-4b36-9a51-5b2f0e0c9d11"
TIMES = st.integers(min_value=1_600_000_000, max_value=4_000_000_000)


@given(st.sampled_from(events.QualityEvent), st.sampled_from(Tier), TIMES)
def test_every_quality_or_limit_change_is_metas_shape(event: events.QualityEvent, tier: Tier, time_s: int) -> None:
    made = events.quality_update(WABA, "+14155550123", event, tier, time_s)
    assert against(webhooks.Webhook, made.body) == []


@given(
    st.sampled_from(ReviewStatus),
    st.one_of(st.none(), st.text(min_size=1, max_size=200)),
    st.sampled_from(["en", "en_US", "pt_BR"]),
    TIMES,
)
def test_every_template_review_status_is_metas_shape(
    status: ReviewStatus, reason: str | None, language: str, time_s: int
) -> None:
    made = events.template_status_update(WABA, "13bda120-9d1c", "order_ready", language, status, reason, time_s)
    assert against(webhooks.Webhook, made.body) == []
