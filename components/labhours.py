"""``labHours``: when a lab is in use, e.g. ``Mon-Fri 07:00-17:00 Asia/Jakarta`` (pure; no Pulumi).

Outside these hours the app VM is stopped, and started again at their beginning, by OCI Resource Scheduler schedules
(components/operations.py). A schedule with ``recurrence_type`` CRON takes a UNIX cron expression, and
``local_time_zone`` is the IANA time zone it is evaluated in (pulumi_oci 5.5.0 resourcescheduler/schedule.py:
"IANA timezone identifier (e.g., 'America/New_York', 'UTC', 'Europe/London')"), so the hours stay local through
daylight-saving changes. The zone is checked against the IANA database Python reads (``zoneinfo``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
EXAMPLE = "Mon-Fri 07:00-17:00 Asia/Jakarta"
_RE = re.compile(r"^(?P<days>\S+)\s+(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})\s+(?P<tz>\S+)\Z")


class LabHoursError(ValueError):
    """Why a labHours value cannot be used (the message names the part that is wrong)."""


@dataclass(frozen=True)
class LabHours:
    days: tuple[int, ...]  # 0 = Monday ... 6 = Sunday, ascending
    start: tuple[int, int]  # (hour, minute), local time
    end: tuple[int, int]
    time_zone: str  # IANA name

    def _cron(self, at: tuple[int, int]) -> str:
        # minute hour day-of-month month day-of-week; UNIX cron counts the week from 0 = Sunday
        dow = ",".join(str((d + 1) % 7) for d in self.days)
        return check_cron(f"{at[1]} {at[0]} * * {dow}")

    @property
    def start_cron(self) -> str:
        return self._cron(self.start)

    @property
    def stop_cron(self) -> str:
        return self._cron(self.end)

    @property
    def hours_per_week(self) -> float:
        minutes = (self.end[0] * 60 + self.end[1]) - (self.start[0] * 60 + self.start[1])
        return len(self.days) * minutes / 60


# The five fields of a UNIX cron expression (crontab(5)): name, lowest, highest. Day of week 0-7, both 0 and 7 are
# Sunday. Resource Scheduler takes this form for recurrence_type CRON (pulumi_oci 5.5.0
# resourcescheduler/schedule.py `recurrence_details`: "a cron expression").
CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_CRON_ITEM = re.compile(r"^(?P<lo>[0-9]{1,2})(?:-(?P<hi>[0-9]{1,2}))?(?:/(?P<step>[0-9]{1,2}))?\Z")


def check_cron(expr: str) -> str:
    """``expr`` when it is a five-field UNIX cron expression (``*``, numbers, ranges ``a-b``, steps ``/n`` and
    comma lists, each within its field's range), else ``LabHoursError`` naming the field. Every schedule the program
    sends is checked here before it is declared, as every alarm query is by operations.parse_query."""
    fields = expr.split()
    if len(fields) != len(CRON_FIELDS) or expr != " ".join(fields):
        raise LabHoursError(f"cron expression {expr!r} does not have 5 fields separated by single spaces")
    for text, (name, lo, hi) in zip(fields, CRON_FIELDS, strict=True):
        if text == "*" or (text.startswith("*/") and text[2:].isdigit() and int(text[2:]) > 0):
            continue
        for item in text.split(","):
            m = _CRON_ITEM.match(item)
            if not m:
                raise LabHoursError(f"cron expression {expr!r}: {name} {item!r} is not a number, a-b or a-b/n")
            first = int(m["lo"])
            last = int(m["hi"]) if m["hi"] is not None else first
            if not lo <= first <= last <= hi or (m["step"] is not None and int(m["step"]) == 0):
                raise LabHoursError(f"cron expression {expr!r}: {name} {item!r} is outside {lo}-{hi}")
    return expr


def _days(text: str) -> tuple[int, ...]:
    found: set[int] = set()
    for part in text.split(","):
        ends = part.split("-")
        if len(ends) > 2 or not all(e.capitalize() in DAYS for e in ends):
            raise LabHoursError(f"days '{text}' are not like Mon-Fri or Mon,Wed,Fri (day names {', '.join(DAYS)})")
        lo, hi = DAYS.index(ends[0].capitalize()), DAYS.index(ends[-1].capitalize())
        if hi < lo:
            raise LabHoursError(f"day range '{part}' runs backwards; write it from the earlier day, e.g. Mon-Fri")
        found.update(range(lo, hi + 1))
    return tuple(sorted(found))


def _time(text: str, what: str) -> tuple[int, int]:
    h, m = (int(x) for x in text.split(":"))
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise LabHoursError(f"{what} time {text} is not a time of day (00:00-23:59)")
    return h, m


def parse_lab_hours(text: str) -> LabHours:
    """``text`` as ``LabHours``, or ``LabHoursError`` saying which part is wrong."""
    m = _RE.match(text.strip())
    if not m:
        raise LabHoursError(f"'{text}' is not '<days> <HH:MM>-<HH:MM> <time zone>'")
    days = _days(m["days"])
    start, end = _time(m["start"], "start"), _time(m["end"], "end")
    if end <= start:
        raise LabHoursError(
            f"the hours {m['start']}-{m['end']} end before they start; lab hours lie within one day (no overnight)"
        )
    tz = m["tz"]
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise LabHoursError(f"'{tz}' is not an IANA time zone (e.g. Asia/Jakarta, Europe/Berlin, UTC)") from None
    return LabHours(days, start, end, tz)
