"""Time semantics, defined once: `as_of` is exclusive.

Facts strictly before `as_of` feed features; the label looks at `[as_of, as_of + horizon)`. A feature window
of `d` days is `[as_of - d days, as_of)`. as_of dates are whole days (midnight, naive UTC), so a daily
rollup never splits a window.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd

from churn.errors import ChurnError


def parse_as_of(value: str | date | datetime | pd.Timestamp) -> pd.Timestamp:
    """An as_of date as a naive UTC midnight Timestamp; times of day are rejected, not truncated.

    Text must be ISO 8601 (2024-06-01, 2024-06-01T02:00:00+02:00): partial or locale-dependent dates such as
    "2024-06" or "1/2/2024" are refused rather than guessed.
    """
    try:
        ts = pd.Timestamp(datetime.fromisoformat(value.strip()) if isinstance(value, str) else value)
    except (ValueError, TypeError):
        raise ChurnError(f"as-of date {value!r} is not a date (expected YYYY-MM-DD)") from None
    if ts is pd.NaT:
        raise ChurnError(f"as-of date {value!r} is not a date (expected YYYY-MM-DD)")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    if ts != ts.normalize():
        raise ChurnError(f"as-of date {value!r} has a time of day; as-of dates are whole days (YYYY-MM-DD)")
    return ts


def window_sql(ts: str, as_of: str, days: int | None) -> str:
    """SQL condition: `ts` lies in the `days`-day feature window before `as_of` (all history if None)."""
    if days is None:
        return f"{ts} < {as_of}"
    return f"{ts} < {as_of} AND {ts} >= {as_of} - INTERVAL {int(days)} DAY"


def label_window_sql(ts: str, as_of: str, horizon_days: int) -> str:
    """SQL condition: `ts` lies in the label window `[as_of, as_of + horizon)`."""
    return f"{ts} >= {as_of} AND {ts} < {as_of} + INTERVAL {int(horizon_days)} DAY"


def days_between_sql(earlier: str, later: str) -> str:
    """SQL for fractional days from `earlier` to `later`.

    Whole microseconds subtracted exactly, then divided: DuckDB's epoch() builds a double per value first,
    which cost a second per 10M rows (Spark: unix_micros).
    """
    return f"CAST(epoch_us({later}) - epoch_us({earlier}) AS DOUBLE) / 86400e6"


def days_between_us(later_us: int | np.ndarray, earlier_us: np.ndarray) -> np.ndarray:
    """Fractional days from `earlier_us` to `later_us` (microseconds since 1970), as `days_between_sql`:
    whole microseconds subtracted exactly, then divided."""
    return np.asarray(later_us - earlier_us).astype(np.float64) / 86400e6


def label_complete(as_of: pd.Timestamp, horizon_days: int, data_end: pd.Timestamp) -> bool:
    """Whether the whole label window `[as_of, as_of + horizon)` was observed (data_end is exclusive)."""
    return as_of + pd.Timedelta(days=horizon_days) <= data_end


def snapshot_dates(
    *,
    explicit: list[date] | None,
    count: int,
    every_days: int | None,
    end: date | None,
    data_start: pd.Timestamp,
    data_end: pd.Timestamp,
    horizon_days: int,
    min_history_days: int,
    notices: list[str] | None = None,
) -> list[pd.Timestamp]:
    """Training as_of dates: explicit ones, or `count` month starts (or `every_days` steps) back from `end`.

    `end` defaults to the latest date whose label window is complete; dates with less than
    `min_history_days` of recorded history are dropped (their features would be truncated by the extract).
    Explicit dates get the same history check, as an error naming them (`explicit_dates`); what else they
    call for is added to `notices`.
    """
    earliest = (data_start + pd.Timedelta(days=min_history_days)).normalize()
    if explicit:
        return explicit_dates(explicit, data_start=data_start, earliest=earliest, horizon_days=horizon_days,
                              min_history_days=min_history_days, notices=notices)
    last = parse_as_of(end) if end else (data_end - pd.Timedelta(days=horizon_days)).normalize()
    dates: list[pd.Timestamp] = []
    if every_days:
        cur = last
        while len(dates) < count and cur >= earliest:
            dates.append(cur)
            cur = cur - pd.Timedelta(days=every_days)
    else:
        cur = last if last.day == 1 else last.replace(day=1)
        while len(dates) < count and cur >= earliest:
            dates.append(cur)
            cur = (cur - pd.DateOffset(months=1)).normalize()
    if not dates:
        raise ChurnError(
            f"no as-of date fits: data runs {data_start.date()} to {data_end.date()}, the label needs "
            f"{horizon_days} days after an as-of date and features need {min_history_days} days before it"
        )
    return sorted(dates)


def explicit_dates(explicit: list[date | str | pd.Timestamp], *, data_start: pd.Timestamp,
                   earliest: pd.Timestamp, horizon_days: int, min_history_days: int,
                   notices: list[str] | None = None) -> list[pd.Timestamp]:
    """Explicit training dates, sorted and each once. Dates before `earliest` (less than `min_history_days`
    of history) are an error naming each of them, as default dates are never chosen there; a repeated date
    and dates closer together than the label horizon (their label windows overlap, so their rows and labels
    nearly repeat) are said in `notices`."""
    parsed = [parse_as_of(d) for d in explicit]
    dates = sorted(set(parsed))
    short = [d for d in dates if d < earliest]
    if short:
        said = ", ".join(f"{d.date()} ({max((d - data_start).days, 0)} days)" for d in short)
        raise ChurnError(
            f"as-of date(s) with too little history before them: {said}; the data starts {data_start.date()} "
            f"and snapshots.min_history_days asks for {min_history_days} days, so the first date that fits is "
            f"{earliest.date()}: give later dates or lower snapshots.min_history_days"
        )
    if notices is None:
        return dates
    repeated = [d for d in dates if parsed.count(d) > 1]
    if repeated:
        notices.append("as-of date(s) given more than once, used once: "
                       + ", ".join(f"{d.date()} ({parsed.count(d)} times)" for d in repeated))
    close = [(a, b) for a, b in zip(dates, dates[1:]) if (b - a).days < horizon_days]
    if close:
        notices.append(
            f"as-of dates closer together than the {horizon_days}-day label horizon: "
            + ", ".join(f"{a.date()} and {b.date()} ({(b - a).days} days)" for a, b in close)
            + "; their label windows overlap, so their rows and labels nearly repeat (the newest dates are the "
            "holdout and validation snapshots)"
        )
    return dates


def scoring_date_warnings(when: pd.Timestamp, *, data_start: pd.Timestamp, data_end: pd.Timestamp,
                          share_after: float, today: date, max_staleness_days: int, future_tolerance_days: int,
                          allow_stale: bool = False) -> list[str]:
    """What a scoring date outside the data calls for: a date more than `max_staleness_days` after the newest
    activity (`data_end` is the day after it), or after `today` + `future_tolerance_days`, is an error
    unless `allow_stale` (then it is a warning saying so); a date before most of the data (`share_after`:
    the share of activity rows on or after it) is a warning."""
    newest = (data_end - pd.Timedelta(days=1)).normalize()
    gap = (when - newest).days
    future = when.date() > today + pd.Timedelta(days=future_tolerance_days)
    warnings: list[str] = []
    if future or gap > max_staleness_days:
        after = f"{gap} days after the newest activity ({newest.date()})"
        what = f"is {after}"
        if future:
            what = f"is in the future (today is {today})" + (f" and {after}" if gap > 0 else "")
        last = (newest + pd.Timedelta(days=max_staleness_days)).date()
        text = (f"as-of date {when.date()} {what}: the scores would describe customers whose data stopped "
                "(every recency grows, every recent count falls to 0)")
        if not allow_stale:
            raise ChurnError(f"{text}. Score as of {last} at the latest (scoring.max_staleness_days: "
                             f"{max_staleness_days}), refresh the data, or pass --allow-stale-data "
                             "(allow_stale_data=True in Python) to score anyway")
        warnings.append(f"{text}; scored anyway because of --allow-stale-data: read every score, reason and "
                        "offer of this run with that in mind")
    if when <= data_start:
        warnings.append(f"as-of date {when.date()} is before the first activity ({data_start.date()}): no "
                        "customer has any activity before it, so every score rests on profile data alone")
    elif share_after > 0.5:
        warnings.append(f"as-of date {when.date()} is before most of the data: {share_after:.0%} of the activity "
                        f"rows are on or after {when.date()} (activity runs {data_start.date()} to "
                        f"{newest.date()}); customers are scored on the history before it only")
    return warnings
