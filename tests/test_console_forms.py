"""What the console's pages read and show, as properties: a case number from a URL is digits or refused, and a
duration reads at a glance."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cove.console import forms
from cove.console.figures.timeline import DAY_MS
from cove.console.pages import age_label


@pytest.mark.parametrize(
    ("ms", "shown"),
    [(0, "0 min"), (59_999, "0 min"), (61 * 60_000, "1 h 1 min"), (DAY_MS + 3 * 3_600_000, "1 d 3 h"), (-5, "0 min")],
)
def test_ages_read_at_a_glance(ms: int, shown: str) -> None:
    assert age_label(ms) == shown


@given(raw=st.text(max_size=20))
def test_a_case_number_is_digits_or_refused(raw: str) -> None:
    try:
        number = forms.case_number(raw, "review")
    except forms.Refusal as refused:
        assert (refused.status, refused.code) == (404, "unknown_case")
        assert not (raw.isascii() and raw.isdigit() and not raw.startswith("0") and len(raw) <= 10)
    else:
        assert str(number) == raw and 0 < number < 10**10
