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
    """Sets each Timestamp field of `message` named by a keyword to its moment; None leaves the field unset."""
    for field, moment in moments.items():
        if moment is not None:
            getattr(message, field).CopyFrom(timestamp(moment))
