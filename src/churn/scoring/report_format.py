"""How the report words its figures: money in the plan's currency, counts, percentages, dates, codes made
readable and language names. Every figure on the page goes through these, so it is worded once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

LANGUAGE_NAMES = {
    "en": "English",
    "de": "German",
    "sl": "Slovenian",
    "lv": "Latvian",
    "tr": "Turkish",
    "fa": "Persian",
    "ar": "Arabic",
    "he": "Hebrew",
    "ur": "Urdu",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "nl": "Dutch",
    "pl": "Polish",
    "pt": "Portuguese",
    "hr": "Croatian",
    "sr": "Serbian",
    "lt": "Lithuanian",
    "et": "Estonian",
    "fi": "Finnish",
    "sv": "Swedish",
    "da": "Danish",
    "no": "Norwegian",
    "cs": "Czech",
    "sk": "Slovak",
    "hu": "Hungarian",
    "ro": "Romanian",
    "bg": "Bulgarian",
    "el": "Greek",
    "ru": "Russian",
    "uk": "Ukrainian",
}
CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "CHF": "CHF ", "TRY": "₺", "IRR": "IRR "}


# ------------------------------------------------------------------------------------------ formatting
def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(f) else f


def money_formatter(currency: str) -> Callable[[Any], str]:
    """A formatter for amounts in `currency`: 12345.6 -> '€12,346'; None -> 'not available'."""
    symbol = CURRENCY_SYMBOLS.get(currency.upper(), f"{currency} ")

    def fmt(value: Any) -> str:
        v = _num(value)
        if v is None:
            return "not available"
        sign = "-" if v < 0 else ""
        return f"{sign}{symbol}{abs(v):,.0f}"

    return fmt


def _count(value: Any) -> str:
    v = _num(value)
    return "not available" if v is None else f"{v:,.0f}"


def _pct(value: Any, digits: int = 0) -> str:
    v = _num(value)
    return "not available" if v is None else f"{v:.{digits}%}"


def humanize(code: Any) -> str:
    """'no_consent' -> 'No consent' (a code from the data, made readable; the text itself is kept)."""
    s = str(code).replace("_", " ").strip()
    return s[:1].upper() + s[1:] if s else "(blank)"


def _date(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return str(value)
    if ts == ts.normalize():
        return str(ts.date())
    return ts.strftime("%Y-%m-%d %H:%M") + (f" {ts.tzname()}" if ts.tzinfo is not None else "")
