"""google.protobuf Timestamp and Duration <-> Python values, for every service's proto mappers.

(google.type.Date <-> `date` is `crmkit.validation.to_date` / `from_date`.)
"""

from __future__ import annotations

from datetime import datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp


def timestamp(moment: datetime) -> Timestamp:
    """A datetime as a Timestamp."""
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def duration(value: timedelta) -> Duration:
    """A timedelta as a Duration."""
    message = Duration()
    message.FromTimedelta(value)
    return message


def set_timestamps(message: Message, **moments: datetime | None) -> None:
    """Sets each Timestamp field of `message` named by a keyword to its moment; None leaves the field unset.

    In place (no Timestamp built and copied: mappers run this for every message they make), and a
    moment that is the very object of the previous field is converted once (a record created and
    not changed since carries one datetime twice). Identity, not equality: equal aware datetimes
    in one zone can be an hour apart across a DST fold."""
    previous: tuple[datetime, Timestamp] | None = None
    for field, moment in moments.items():
        if moment is None:
            continue
        target = getattr(message, field)
        if previous is not None and previous[0] is moment:
            target.CopyFrom(previous[1])
        else:
            target.FromDatetime(moment)
        previous = (moment, target)
