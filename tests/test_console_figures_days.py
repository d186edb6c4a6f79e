"""The console's time axis and its form fields as properties: every day of the window once, nothing outside it
counted, and a case number from a URL either digits or refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cove.console import forms
from cove.console.figures.days import DAY_MS, Window, age_label, day_label, day_of

MOMENTS = st.integers(min_value=0, max_value=4_102_444_800_000)  # 1970 to 2100


@given(now=MOMENTS, days=st.integers(min_value=1, max_value=400))
def test_a_window_ends_today_and_holds_each_day_once(now: int, days: int) -> None:
    window = Window.ending(now, days)
    assert len(window.days) == days == len(set(window.labels()))
    assert window.last == day_of(now) and window.start_ms <= now < window.start_ms + days * DAY_MS
    assert window.labels()[-1] == day_label(day_of(now))


@given(now=MOMENTS, per_day=st.dictionaries(st.integers(min_value=-50, max_value=50), st.integers(0, 10**9)))
def test_spread_keeps_the_window_days_and_only_them(now: int, per_day: dict[int, int]) -> None:
    window = Window.ending(now, 30)
    shifted = {window.first + offset: value for offset, value in per_day.items()}
    spread = window.spread(shifted)
    assert len(spread) == 30
    assert sum(spread) == sum(v for d, v in shifted.items() if window.first <= d <= window.last)


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
