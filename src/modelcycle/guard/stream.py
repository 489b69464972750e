"""Guarding a streamed answer: hold a tail back, re-check it as text arrives, release the rest.

A ``StreamGuard`` takes the pieces of each choice of a stream as they come
(``feed``) and says which of them may go out now (``Release``). It keeps the
last ``stream_hold_back_chars`` characters of each choice back, so that a
match split across pieces (an e-mail sent a few characters at a time) is seen
whole before any of it leaves. On each piece it re-checks a bounded window —
the held text plus as much already released text before it, for detectors
that look at what precedes a match — never the whole answer, so a piece costs
time in proportion to its own length and the window's.

Releases follow the pieces as they were fed (a piece goes out whole, its text
rewritten where a span was redacted), so a stream without findings goes out
piece for piece as it came in, only later by the window. A redact or block
finding that reaches into the held tail holds everything from its start until
it closes (ends at least the hold-back before the newest character), however
long that takes: a span that never closes holds the rest of the answer to the
end, as a whole answer would be. Past ``backoff_chars`` held, the held text is
re-checked only once it has grown by half since the last check, so even then
the total cost stays linear. The answer's text as released equals the
redaction of the whole answer whenever every match is shorter than the
hold-back and the detectors need no more context before a match than
``context`` characters.

A block finding ends the choice: nothing more of it is released. ``finish``
releases what is held once the choice has ended.

Rules whose detector judges a text only as a whole (``whole_text``: JSON
validity, size, off-topic) cannot run on windows: they run once, on the whole
answer, at ``finish``. By then most of it has gone out, so a block there only
withholds the held tail and ends the choice with ``content_filter``.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from modelcycle.guard.engine import DETECTOR_ERROR, CompiledPolicy
from modelcycle.guard.types import Finding

MIN_CONTEXT_CHARS = 32
"""Released characters kept before the held tail for detectors' left context, at least."""
MIN_BACKOFF_CHARS = 1024


@dataclass(frozen=True, slots=True)
class Release:
    """What of one choice may go out now."""

    pieces: tuple[str, ...] = ()
    """The text of each fed piece now released, in order: rewritten where a span was
    redacted, ``""`` where a redacted span swallowed the whole piece."""
    changed: tuple[bool, ...] = ()
    """Per piece: whether its text was rewritten."""
    blocked: bool = False
    """The choice must end now (``finish_reason`` ``content_filter``); nothing more of
    it will be released."""


NOTHING = Release()
BLOCKED = Release(blocked=True)


class _Choice:
    """The guard's state for one choice of the stream."""

    __slots__ = (
        "blocked",
        "bounds",
        "checked",
        "errors",
        "finished",
        "full",
        "released",
        "seen",
        "tail",
        "tail_at",
    )

    def __init__(self) -> None:
        self.tail = ""
        """Raw text from ``tail_at`` to the newest character: context, then the held text."""
        self.tail_at = 0
        self.released = 0
        """Offset (in the raw answer) up to which the text went out."""
        self.bounds: deque[int] = deque()
        """End offsets of the pieces fed and not yet released."""
        self.checked = 0
        """Offset of the newest character at the last check."""
        self.blocked = False
        self.finished = False
        self.seen: set[tuple[str, str, int]] = set()
        self.errors: set[str] = set()
        self.full: list[str] | None = None
        """Every piece fed, when a whole-text rule must see the whole answer at the end."""

    @property
    def end(self) -> int:
        return self.tail_at + len(self.tail)


class StreamGuard:
    """Runs a policy's output rules over the choices of one stream (see the module docstring).

    Not thread-safe: one stream, one task. ``findings`` collects every finding
    once, with its choice, its offsets in that choice's raw answer.
    """

    def __init__(
        self,
        policy: CompiledPolicy,
        *,
        hold_back: int | None = None,
        context: int | None = None,
        backoff_chars: int | None = None,
    ):
        self.policy = policy
        self.hold_back = policy.spec.stream_hold_back_chars if hold_back is None else hold_back
        self.context = max(self.hold_back, MIN_CONTEXT_CHARS) if context is None else context
        self.backoff_chars = (
            max(MIN_BACKOFF_CHARS, 16 * self.hold_back) if backoff_chars is None else backoff_chars
        )
        self.findings: list[tuple[int, Finding]] = []
        self.seconds = 0.0
        """Time spent in detectors."""
        self._choices: dict[int, _Choice] = {}
        self._whole = policy.has_whole_text("output")

    def feed(self, index: int, text: str) -> Release:
        """Take the next piece of choice ``index``; what may go out now."""
        choice = self._choices.get(index)
        if choice is None:
            choice = self._choices[index] = _Choice()
            if self._whole:
                choice.full = []
        if choice.blocked or choice.finished:
            return NOTHING
        if choice.full is not None:
            choice.full.append(text)
        choice.tail += text
        choice.bounds.append(choice.end)
        held = choice.end - choice.released
        if held <= self.hold_back:
            return _empty_pieces(choice)  # nothing can go out yet: no need to look
        if held > self.backoff_chars and choice.end - choice.checked < held // 2:
            return NOTHING  # a long open span: look again once the text has grown by half
        return self._release(index, choice, final=False)

    def finish(self, index: int) -> Release:
        """Choice ``index`` ended: check and release everything it still holds."""
        choice = self._choices.get(index)
        if choice is None or choice.blocked or choice.finished:
            return NOTHING
        if choice.full is not None and self._judge_whole(index, choice):
            return BLOCKED
        release = self._release(index, choice, final=True)
        choice.finished = True
        return release

    def blocked(self, index: int) -> bool:
        """Whether choice ``index`` was blocked."""
        choice = self._choices.get(index)
        return choice is not None and choice.blocked

    def open_choices(self) -> list[int]:
        """Choices fed and neither finished nor blocked, in index order."""
        return sorted(i for i, c in self._choices.items() if not (c.finished or c.blocked))

    # -- internals -------------------------------------------------------------------

    def _judge_whole(self, index: int, choice: _Choice) -> bool:
        """Run the whole-text rules on the whole answer; whether they block it."""
        assert choice.full is not None
        started = time.perf_counter()
        decision = self.policy.check("".join(choice.full), "output", scope="whole")
        self.seconds += time.perf_counter() - started
        choice.full = None
        for finding in decision.findings:
            self._record(index, choice, finding)
        if not decision.blocked:
            return False
        choice.blocked = True
        choice.bounds.clear()
        choice.tail = ""
        return True

    def _release(self, index: int, choice: _Choice, *, final: bool) -> Release:
        started = time.perf_counter()
        decision = self.policy.check(choice.tail, "output", scope="windowed")
        self.seconds += time.perf_counter() - started
        at, previous, end = choice.tail_at, choice.released, choice.end
        choice.checked = end
        found = [_shifted(f, at) for f in decision.findings]
        blocking = [f for f in found if f.action == "block"]
        if blocking:
            for finding in blocking:
                self._record(index, choice, finding)
            choice.blocked = True
            choice.bounds.clear()
            choice.tail = ""
            return BLOCKED
        spans = [f for f in found if f.action == "redact" and f.end > f.start]
        cut = self._cut(choice, spans, final=final)
        if cut is None:
            return NOTHING
        count = 0
        while count < len(choice.bounds) and choice.bounds[count] <= cut:
            count += 1
        ends = [choice.bounds.popleft() for _ in range(count)]
        pieces, changed = _rewrite(choice.tail, at, previous, ends, spans, self.policy)
        for finding in found:
            if finding.type == DETECTOR_ERROR or previous < finding.end <= cut:
                self._record(index, choice, finding)
        choice.released = cut
        keep_from = max(at, cut - self.context)
        choice.tail = choice.tail[keep_from - at :]
        choice.tail_at = keep_from
        return Release(tuple(pieces), tuple(changed))

    def _cut(self, choice: _Choice, spans: list[Finding], *, final: bool) -> int | None:
        """The piece boundary up to which text may go out; ``None``: nothing may."""
        end = choice.end
        limit = end
        if not final:  # a span reaching the newest character may still grow
            limit = min([end - self.hold_back, *(f.start for f in spans if f.end >= end)])
        while True:
            cut = _last_bound(choice, limit)
            if cut is None:
                return None
            straddling = [f.start for f in spans if f.start < cut < f.end]
            if not straddling:
                return cut
            limit = min(straddling)  # hold from the open span's start until it closes

    def _record(self, index: int, choice: _Choice, finding: Finding) -> None:
        if finding.type == DETECTOR_ERROR:
            if finding.detector in choice.errors:
                return
            choice.errors.add(finding.detector)
        else:
            key = (finding.detector, finding.type, finding.start)
            if key in choice.seen:
                return
            choice.seen.add(key)
        self.findings.append((index, finding))


def _last_bound(choice: _Choice, limit: int) -> int | None:
    cut = None
    for bound in choice.bounds:
        if bound > limit:
            break
        cut = bound
    return cut


def _empty_pieces(choice: _Choice) -> Release:
    """Pieces with no text at the released offset (tool calls, say) go out at once."""
    count = 0
    while count < len(choice.bounds) and choice.bounds[count] == choice.released:
        count += 1
    if not count:
        return NOTHING
    for _ in range(count):
        choice.bounds.popleft()
    return Release(("",) * count, (False,) * count)


def _shifted(finding: Finding, offset: int) -> Finding:
    if finding.type == DETECTOR_ERROR:  # about the detector, not a span: pinned to the window
        return Finding(
            finding.detector, finding.type, offset, offset, finding.score, finding.action
        )
    return _clipped(finding, finding.start + offset, finding.end + offset)


def _clipped(finding: Finding, start: int, end: int) -> Finding:
    return Finding(finding.detector, finding.type, start, end, finding.score, finding.action)


def _merged(spans: list[Finding], start: int, end: int) -> list[tuple[int, int, str]]:
    """Spans clipped to [start, end), overlaps merged as ``engine.redact`` merges them."""
    clipped = [
        (max(f.start, start), min(f.end, end), f.type, f.score)
        for f in spans
        if f.start < end and f.end > start
    ]
    clipped.sort(key=lambda span: span[0])  # stable: the policy's order breaks ties
    merged: list[tuple[int, int, str, float]] = []
    for s, e, kind, score in clipped:
        if merged and s < merged[-1][1]:
            last_start, last_end, last_kind, last_score = merged[-1]
            if score > last_score:
                last_kind, last_score = kind, score
            merged[-1] = (last_start, max(last_end, e), last_kind, last_score)
        else:
            merged.append((s, e, kind, score))
    return [(s, e, kind) for s, e, kind, _ in merged]


def _rewrite(
    tail: str,
    at: int,
    start: int,
    ends: list[int],
    spans: list[Finding],
    policy: CompiledPolicy,
) -> tuple[list[str], list[bool]]:
    """The released pieces' texts: each redacted span's placeholder in the piece it starts in."""
    merged = _merged(spans, start, ends[-1])
    placeholder = policy.spec.placeholder
    pieces: list[str] = []
    changed: list[bool] = []
    piece_start = start
    for piece_end in ends:
        out: list[str] = []
        cursor = piece_start
        altered = False
        for s, e, kind in merged:
            if e <= piece_start or s >= piece_end:
                continue
            altered = True
            if s > cursor:
                out.append(tail[cursor - at : s - at])
            if s >= piece_start:
                out.append(placeholder.format(type=kind))
            cursor = max(cursor, min(e, piece_end))
        out.append(tail[cursor - at : piece_end - at])
        pieces.append("".join(out))
        changed.append(altered)
        piece_start = piece_end
    return pieces, changed
