"""A resource's update period, an ISO 8601 duration, in seconds."""

from __future__ import annotations

import pytest

from comparator.periods import duration_seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("P1D", 86400), ("PT12H", 43200), ("P2W", 1_209_600), ("P1M", 30 * 86400),
     ("P1Y2M3DT4H5M6S", (428 * 24 + 4) * 3600 + 5 * 60 + 6)],
)  # fmt: skip
def test_update_periods_in_seconds(text: str, seconds: int) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["1D", "P", "PT", "P1H", "P1.5D", ""])
def test_what_is_not_a_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not an ISO 8601 duration"):
        duration_seconds(text)
