"""The clearing day: which date a transaction clears on, and the UTC window of a clearing date. Pure.

A transaction clears on the acquirer-local date of its `created_at` (UTC in storage), moved to the next
day when the local time is at or after the cut-off: with the default 23:00, clearing date D covers
[D−1 23:00, D 23:00) local time.

>>> import datetime as dt
>>> from zoneinfo import ZoneInfo
>>> tz, cut = ZoneInfo("Asia/Shanghai"), dt.time(23, 0)
>>> clearing_date(dt.datetime(2026, 11, 26, 14, 59, 59), tz, cut)   # 22:59:59 local
datetime.date(2026, 11, 26)
>>> clearing_date(dt.datetime(2026, 11, 26, 15, 0, 0), tz, cut)     # 23:00:00 local: late
datetime.date(2026, 11, 27)
>>> clearing_window(dt.date(2026, 11, 27), tz, cut)
(datetime.datetime(2026, 11, 26, 15, 0), datetime.datetime(2026, 11, 27, 15, 0))
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

ONE_DAY = dt.timedelta(days=1)


def to_local(utc_naive: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    return utc_naive.replace(tzinfo=dt.UTC).astimezone(tz)


def to_utc_naive(local: dt.datetime) -> dt.datetime:
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def clearing_date(created_at_utc: dt.datetime, tz: ZoneInfo, cut_off: dt.time) -> dt.date:
    """The clearing date of a transaction created at `created_at_utc` (naive UTC)."""
    local = to_local(created_at_utc, tz)
    return local.date() + ONE_DAY if local.time() >= cut_off else local.date()


def clearing_window(date: dt.date, tz: ZoneInfo, cut_off: dt.time) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in naive UTC of the transactions that clear on `date`."""
    start = dt.datetime.combine(date - ONE_DAY, cut_off, tzinfo=tz)
    end = dt.datetime.combine(date, cut_off, tzinfo=tz)
    return to_utc_naive(start), to_utc_naive(end)
