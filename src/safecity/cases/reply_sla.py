"""The reply deadline of a citizen comment (the handling unit's answer on the portal).

A citizen who comments on a case through the public portal (阳光警务) is owed a reply
within :data:`REPLY_WORKDAYS` working days: the deadline is the end (local midnight,
Asia/Shanghai) of the second working day after the day the comment arrived.

Why two *working* days, and why counted this way:

* the reply is written by the case's handling unit (the investigating officer or the
  station's office), who work office days, not by the 24-hour duty desk; a comment sent
  on Friday evening or during the National Day week is answered on the next working days,
  as the e-services clock counts (weekends and public holidays off, 调休 make-up days on:
  :mod:`safecity.eservices.workdays`, which holds the calendar);
* like the statutory periods elsewhere in the system, the day of the comment is not
  counted and the period ends at local midnight, so "due 10 June" means the whole of
  10 June, whatever the hour the citizen wrote;
* two days is this system's service target, not a figure from a statute: a comment
  is a question about progress (the substance goes through reports, reviews and
  complaints, which have their own deadlines), and a reply within two working days keeps
  the portal's promise of a timely answer without asking more than a station can give
  alongside its cases. Change :data:`REPLY_WORKDAYS` to change the policy; stored
  deadlines keep the value they were given.

Past the end of the holiday table (and its provisional years) the working-day clock
refuses to guess: the deadline then falls back to :data:`REPLY_WORKDAYS` calendar days,
so a citizen's comment is never refused because a calendar was not updated.

The deadline is set when the comment row is inserted (the column default of
``CaseComment.reply_due_at``, for citizen comments only), so every way of creating a
citizen comment gets one; :mod:`safecity.cases.replies_due` answers, lists and alerts.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta

from safecity.eservices import workdays
from safecity.eservices.workdays import CHINA_TZ, local_date
from safecity.platform.errors import ConfigurationError

log = logging.getLogger(__name__)

REPLY_WORKDAYS = 2
"""Working days the handling unit has to reply to a citizen comment."""


def _end_of(day: date) -> datetime:
    """The end of local ``day`` (the next local midnight), as an aware timestamp."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=CHINA_TZ)


def reply_due(created_at: datetime) -> datetime:
    """The reply deadline of a citizen comment made at ``created_at`` (aware)."""
    start = local_date(created_at)
    try:
        last = workdays.add_workdays(start, REPLY_WORKDAYS)
    except ConfigurationError:
        log.warning("reply deadline: no working-day calendar for %s; counting calendar days", start)
        last = start + timedelta(days=REPLY_WORKDAYS)
    return _end_of(last)
