"""How many SMS segments a text takes, GSM-7 or UCS-2 (3GPP TS 23.038/23.040)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


@dataclass(frozen=True)
class Segmentation:
    """The encoding a text needs, its length in that encoding's units, and its segments."""

    encoding: str
    units: int
    segments: int


def segmentation(text: str) -> Segmentation:
    """GSM-7 if every character is in the default alphabet or its extension, else UCS-2."""
    try:
        units = len(text.encode("gsm03.38"))  # extension characters take two septets
        single, part, encoding = GSM7_SINGLE, GSM7_PART, "GSM-7"
    except UnicodeEncodeError:
        units = len(text.encode("utf-16-be")) // 2
        single, part, encoding = UCS2_SINGLE, UCS2_PART, "UCS-2"
    segments = 1 if units <= single else math.ceil(units / part)
    return Segmentation(encoding, units, segments)


def fits_one_gsm7_segment(text: str) -> bool:
    """True when the text goes as one GSM-7 segment."""
    result = segmentation(text)
    return result.encoding == "GSM-7" and result.segments == 1
