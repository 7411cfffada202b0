"""Real-time recognition on a camera or video: capture, decision layer, stream."""
from runtime.stream.capture import Frame, FrameSource, open_source
from runtime.stream.decision import DecisionLayer, Event
from runtime.stream.stream import RecognitionStream

__all__ = ["Frame", "FrameSource", "open_source", "DecisionLayer", "Event", "RecognitionStream"]
