"""Events: what changed, who changed it, and where the record of it goes."""

from bindle_server.events.model import CALLER, PUBLIC, SYSTEM, Action, Caller, Event
from bindle_server.events.sink import EventSink, NullSink, Recorder

__all__ = [
    "CALLER",
    "PUBLIC",
    "SYSTEM",
    "Action",
    "Caller",
    "Event",
    "EventSink",
    "NullSink",
    "Recorder",
]
