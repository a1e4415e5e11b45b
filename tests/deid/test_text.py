"""Free-text cleaning: identifiers cut out, the rest of the description kept."""

from __future__ import annotations

import pytest

from dicomhaven.deid._text import MASK, TextCleaner

CLEANER = TextCleaner.for_values(["SMITHSON^JANE^MARY", "ZZ91234567", "12 Acacia Avenue, Leeds"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Pt Jane SMITHSON for biopsy", f"Pt {MASK} {MASK} for biopsy"),
        ("Hosp no ZZ91234567 left breast", f"Hosp no {MASK} left breast"),
        ("NHS 999 000 0018 recall", f"NHS {MASK} recall"),
        ("NHS 9990000018", f"NHS {MASK}"),
        ("DOB 01/02/1960", f"DOB {MASK}"),
        ("DOB 1960-02-01 and 19600201", f"DOB {MASK} and {MASK}"),
        ("born 3rd March 1960", f"born {MASK}"),
        ("seen by Dr Emma Clarke today", f"seen by {MASK} today"),
        ("tel 07700 900466", f"tel {MASK}"),
        ("postcode LS1 4AB", f"postcode {MASK}"),
        ("mail jane@example.org", f"mail {MASK}"),
        # A house number alone is too short to cut safely (it would cut "12 mm" too), but
        # the address as written is cut whole.
        ("lives at 12 Acacia Avenue, Leeds", f"lives at {MASK}"),  # the whole address
    ],
)
def test_identifiers_are_cut(text: str, expected: str) -> None:
    assert CLEANER.clean(text) == expected


@pytest.mark.parametrize(
    "text",
    ["CT CHEST WITH CONTRAST", "Screening mammography, left MLO", "kVp 120 mAs 200",
     "Ref 1234567890 (not a valid NHS number)", "Smithsonian protocol"],
)  # fmt: skip
def test_ordinary_text_is_kept(text: str) -> None:
    assert CLEANER.clean(text) == text
