"""Redaction of stored span text: personal data and secrets out before a span is written.

The recorder's writer thread runs ``SpanRedactor.apply`` on every batch, so the
request path pays nothing. A span's ``input``, ``output``, ``error_message``
(upstream errors often quote the prompt) and the string values of its
``attributes`` pass through a ``TextRedactor`` unless its project keeps raw
text (``store_raw_text``). The redactor itself is injected (services builds
it from the guard stage's ``pii`` and ``secrets`` detectors): monitor and guard
are sibling layers and do not import each other.

JSON texts (the gateway stores messages as a JSON list) are redacted value by
value, so a placeholder never breaks the JSON and a key is never mistaken for
data; a text that is not JSON is redacted whole. Redaction must be idempotent
(``[EMAIL_ADDRESS]`` is not found again), so text a deployment's guard policy
already redacted passes through unchanged. Within a batch each distinct
string is redacted once: roles, attribute values and system prompts repeat from
span to span.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from modelcycle.monitor import gil
from modelcycle.monitor.spans import SpanRecord

log = logging.getLogger(__name__)

TextRedactor = Callable[[str], str]
"""Text -> the same text with personal data and secrets replaced by placeholders.

Must be thread-safe and idempotent, and raise when it cannot redact (a detector
failed): the text is then withheld rather than stored raw."""

RawTextSwitch = Callable[[int], bool]
"""Project id -> whether the project stores raw text (``MonitorPolicyRow.store_raw_text``)."""

WITHHELD = "[WITHHELD: redaction failed]"
"""What is stored instead of a text the redactor could not process."""

_JSON_START = frozenset('[{"')
YIELD_EVERY = 16
"""Spans redacted between two GIL yields (about 100 µs each: the detectors are regexes)."""


class SpanRedactor:
    """Rewrites spans' text in place before they are stored; used by one thread at a time."""

    def __init__(self, redact: TextRedactor, keeps_raw_text: RawTextSwitch):
        self._redact = redact
        self._keeps_raw_text = keeps_raw_text
        self._seen: dict[str, str] = {}
        self.failures = 0
        """Texts withheld because the redactor raised."""

    def apply(self, spans: Sequence[SpanRecord]) -> int:
        """Redact every span of a project without raw text; returns the spans changed."""
        changed = 0
        raw: dict[int, bool] = {}
        try:
            for i, span in enumerate(spans):
                if i and not i % YIELD_EVERY:
                    gil.pause()
                keep = raw.get(span.project_id)
                if keep is None:
                    keep = raw[span.project_id] = self._raw(span.project_id)
                if not keep:
                    changed += self.span(span)
        finally:
            self._seen.clear()  # raw text is held no longer than the batch
        return changed

    def span(self, span: SpanRecord) -> bool:
        """Redact one span's text fields; whether anything changed."""
        before = (span.input, span.output, span.error_message, span.attributes)
        span.input = self.text(span.input)
        span.output = self.text(span.output)
        span.error_message = self.text(span.error_message)
        if span.attributes:
            span.attributes = self._value(span.attributes)
        return before != (span.input, span.output, span.error_message, span.attributes)

    def text(self, text: str | None) -> str | None:
        """``text`` redacted, value by value when it is JSON; ``None`` stays ``None``."""
        if not text:
            return text
        if text[0] in _JSON_START:
            # Most spans hold nothing to redact: without escapes, every JSON string value
            # appears verbatim in the text, so a clean pass over the whole text clears
            # them all at once (one detector pass, no parse). Otherwise, value by value.
            if "\\" not in text and self._one(text) == text:
                return text
            try:
                data = orjson.loads(text)
            except orjson.JSONDecodeError:
                pass
            else:
                redacted = self._value(data)
                return text if redacted == data else orjson.dumps(redacted).decode()
        return self._one(text)

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._one(value)
        if isinstance(value, dict):
            return {key: self._value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._value(item) for item in value]
        return value

    def _one(self, text: str) -> str:
        if not text:
            return text
        done = self._seen.get(text)
        if done is not None:
            return done
        try:
            done = self._redact(text)
        except Exception:  # never store what could not be checked
            self.failures += 1
            log.warning("redacting a span's text failed; the text was withheld", exc_info=True)
            return WITHHELD
        self._seen[text] = done
        return done

    def _raw(self, project_id: int) -> bool:
        try:
            return self._keeps_raw_text(project_id)
        except Exception:  # the policy could not be read: redact, the safe side
            log.warning("reading project %d's raw-text switch failed; redacting", project_id)
            return False
