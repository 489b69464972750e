"""Monitoring: traces of every request, rollups, metrics, feedback, drift and alerts."""

from modelcycle.monitor.recorder import Recorder
from modelcycle.monitor.spans import SpanRecord
from modelcycle.monitor.writer import SpanWriter

__all__ = ["Recorder", "SpanRecord", "SpanWriter"]
