"""The replayer: applies the write log to the backend, in order, exactly once."""

from mussel.replay.replayer import Replayer
from mussel.replay.watermark import Watermark

__all__ = ["Replayer", "Watermark"]
