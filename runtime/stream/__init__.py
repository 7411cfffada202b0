"""Real-time recognition on a camera or video: capture, decision layer, stream."""
from .capture import Frame, FrameSource, open_source
from .decision import DecisionLayer, Event
from .stream import RecognitionStream

__all__ = ["Frame", "FrameSource", "open_source", "DecisionLayer", "Event", "RecognitionStream"]
