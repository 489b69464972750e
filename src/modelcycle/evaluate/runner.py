"""Executing a run: every (sample, target) pair answered through the gateway, scored, stored.

Three kinds of task share one event loop: a producer pages samples from the
database and queues the pairs still missing; ``concurrency`` workers send them
to their targets through :class:`TargetCaller` (the production path: limits,
routes, traces); one writer scores the answers in a thread and stores them in
batches (every ``batch_size`` answers or ``flush_s`` seconds, more when the
database is slower than the targets), each batch its own transaction.

Results are unique per (run, sample, target) and inserted with conflict-ignore,
so a crash loses at most the batch not yet written, and a restart skips every
pair already stored and never duplicates one. The writer also reports progress,
saves a checkpoint and notices a cancellation (the job's, or the run's status).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import orjson
from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite

from modelcycle.backends import GenerationParams
from modelcycle.evaluate.caller import Answer, SyncCaller, TargetCaller, calling, is_guard_block
from modelcycle.evaluate.samples import EvalSample, load_samples
from modelcycle.evaluate.scorers.types import Score, Scorer, ScoringInput, score_batch
from modelcycle.jobs import JobContext
from modelcycle.store import Store
from modelcycle.store.tables import EvalResultRow, EvalRunRow

Outcome = Literal["done", "cancelled", "stopping"]
"""How an execution ended: every pair stored, cancelled, or the worker is stopping."""

BASELINE_OUTPUT = "_baseline_output"
"""Metadata key under which a pairwise scorer (``needs_baseline = True``) gets the baseline's
answer to the same sample."""

REPORT_EVERY_S = 1.0
"""Progress and checkpoint are saved at most this often."""
CANCEL_CHECK_S = 0.1
"""A cancellation is looked for in the database at most this often (a stopping worker,
an in-process flag, after every batch)."""


def scores_blocked(scorer: Scorer) -> bool:
    """Whether ``scorer`` judges guard-blocked requests (``scores_blocked = True``)."""
    return bool(getattr(scorer, "scores_blocked", False))


def needs_baseline(scorer: Scorer) -> bool:
    """Whether ``scorer`` judges a candidate's answer against the baseline's (pairwise)."""
    return bool(getattr(scorer, "needs_baseline", False))


@dataclass(frozen=True, slots=True)
class RunInputs:
    """What an execution needs to know about its run."""

    run_id: int
    version_id: int
    targets: tuple[str, ...]
    baseline: str | None
    scorers: tuple[Scorer, ...]
    params: GenerationParams
    concurrency: int
    sample_limit: int | None
    total: int
    """Pairs the run holds when complete: samples x targets."""


@dataclass(slots=True)
class _Answered:
    sample: EvalSample
    target: str
    answer: Answer


@dataclass(slots=True)
class _Progress:
    stored: int = 0
    reported_at: float = field(default_factory=time.monotonic)


class RunExecution:
    """One attempt at a run; ``run()`` returns when every pair is stored or it was stopped."""

    def __init__(
        self,
        store: Store,
        caller: TargetCaller,
        inputs: RunInputs,
        *,
        context: JobContext | None = None,
        batch_size: int = 100,
        flush_s: float = 1.0,
        max_batch: int = 500,
        page_size: int = 500,
        elapsed_before_s: float = 0.0,
    ):
        self.store, self.caller, self.inputs, self.context = store, caller, inputs, context
        self.batch_size, self.flush_s, self.max_batch = batch_size, flush_s, max_batch
        self.page_size = page_size
        self._elapsed_before_s = elapsed_before_s
        self._started = time.monotonic()
        self._checked_at = 0.0
        self.progress = _Progress()
        self.answered = 0
        """Answers received in this attempt (stored or not)."""
        self._stop: Outcome | None = None
        self._pairwise = any(needs_baseline(s) for s in inputs.scorers)
        self._baseline_answers: dict[int, Answer] = {}
        # Baseline first for each sample: a pairwise scorer can score the others soon after.
        first = [inputs.baseline] if inputs.baseline in inputs.targets else []
        self._order = tuple(first + [t for t in inputs.targets if t != inputs.baseline])
        insert = sqlite.insert if store.is_sqlite else postgresql.insert
        # A Core insert on the table: the ORM's bulk path cost most of a batch's time.
        self._insert = insert(cast(Table, EvalResultRow.__table__)).on_conflict_do_nothing(
            index_elements=["run_id", "sample_id", "target"]
        )

    async def run(self) -> Outcome:
        """Answer, score and store every missing pair; how it ended."""
        self.progress.stored = await asyncio.to_thread(self._count_stored)
        pairs: asyncio.Queue[tuple[EvalSample, str] | None] = asyncio.Queue(
            maxsize=2 * self.inputs.concurrency
        )
        answered: asyncio.Queue[_Answered | None] = asyncio.Queue()
        # Scorers in the writer's threads reach models through this (the LLM judge).
        with calling(SyncCaller(self.caller, asyncio.get_running_loop())):
            async with asyncio.TaskGroup() as group:
                group.create_task(self._produce(pairs))
                for _ in range(self.inputs.concurrency):
                    group.create_task(self._work(pairs, answered))
                group.create_task(self._write(answered))
        return self._stop or "done"

    # -- producing and answering ----------------------------------------------------------

    async def _produce(self, pairs: asyncio.Queue[tuple[EvalSample, str] | None]) -> None:
        """Queue the missing pairs page by page; the next page loads while this one is sent.

        Positions are contiguous from 0 (``write_version``), so pages are position
        ranges: a small first page gets the workers going at once.
        """
        end = self.inputs.sample_limit
        offset, size = 0, min(self.page_size, 4 * self.inputs.concurrency)
        loading: asyncio.Future[tuple[list[EvalSample], set[tuple[int, str]]]] | None
        loading = asyncio.ensure_future(asyncio.to_thread(self._page, offset, size))
        while loading is not None:
            page, done = await loading
            offset += size
            size = self.page_size if end is None else min(self.page_size, end - offset)
            more = bool(page) and size > 0 and self._stop is None
            loading = (
                asyncio.ensure_future(asyncio.to_thread(self._page, offset, size)) if more else None
            )
            for sample in page:
                for target in self._order:
                    if (sample.id, target) not in done and self._stop is None:
                        await pairs.put((sample, target))
        for _ in range(self.inputs.concurrency):
            await pairs.put(None)

    def _page(self, offset: int, size: int) -> tuple[list[EvalSample], set[tuple[int, str]]]:
        """A page of samples, and which of their pairs are stored already."""
        with self.store.read() as session:
            page = load_samples(session, self.inputs.version_id, offset=offset, limit=size)
            if not page:
                return [], set()
            rows = session.execute(
                select(
                    EvalResultRow.sample_id,
                    EvalResultRow.target,
                    EvalResultRow.output,
                    EvalResultRow.error,
                ).where(
                    EvalResultRow.run_id == self.inputs.run_id,
                    EvalResultRow.sample_id.in_([sample.id for sample in page]),
                )
            ).all()
        done = set()
        for sample_id, target, output, error in rows:
            done.add((sample_id, target))
            if self._pairwise and target == self.inputs.baseline:
                self._baseline_answers[sample_id] = Answer(output, error=error)
        return page, done

    async def _work(
        self,
        pairs: asyncio.Queue[tuple[EvalSample, str] | None],
        answered: asyncio.Queue[_Answered | None],
    ) -> None:
        while (pair := await pairs.get()) is not None:
            if self._stop is not None:
                continue  # drain the queue so the producer can finish
            sample, target = pair
            try:
                answer = await self.caller.answer(target, sample.input, self.inputs.params)
            except Exception as exc:  # a malformed sample or a backend bug: this pair's error
                answer = Answer(None, error=f"{type(exc).__name__}: {exc}")
            self.answered += 1
            if self._pairwise and target == self.inputs.baseline:
                self._baseline_answers[sample.id] = answer
            await answered.put(_Answered(sample, target, answer))
        await answered.put(None)

    # -- scoring and storing --------------------------------------------------------------

    async def _write(self, answered: asyncio.Queue[_Answered | None]) -> None:
        open_workers = self.inputs.concurrency
        pending: list[_Answered] = []
        flushed_at = time.monotonic()
        while open_workers or pending:
            if open_workers:
                wait = max(0.0, self.flush_s - (time.monotonic() - flushed_at))
                items: list[_Answered | None] = []
                # Nothing new within the wait: flush what waits if it is due. (Not
                # wait_for: on 3.11 it can swallow a cancellation that races a result.)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        items.append(await answered.get())
                while not answered.empty() and len(pending) + len(items) < self.max_batch:
                    items.append(answered.get_nowait())
                for item in items:
                    if item is None:
                        open_workers -= 1
                    else:
                        pending.append(item)
            due = (
                len(pending) >= self.batch_size
                or time.monotonic() - flushed_at >= self.flush_s
                or not open_workers
            )
            if due:
                ready, pending = self._ready(pending, final=not open_workers)
                await asyncio.to_thread(self._flush, ready, not open_workers)
                flushed_at = time.monotonic()

    def _ready(
        self, items: list[_Answered], *, final: bool
    ) -> tuple[list[_Answered], list[_Answered]]:
        """Split into answers that can be scored now and those waiting for the baseline's."""
        if not self._pairwise:
            return items, []
        ready, waiting = [], []
        for item in items:
            waits = (
                item.answer.error is None
                and item.target != self.inputs.baseline
                and item.sample.id not in self._baseline_answers
            )
            if not waits or (final and self._stop is None):
                ready.append(item)
            elif not final:
                waiting.append(item)
            # final and stopped: dropped, answered again on resume (with its baseline)
        return ready, waiting

    def _flush(self, items: list[_Answered], last: bool) -> None:
        self._store_batch(items)
        self._report(last)

    def _store_batch(self, items: list[_Answered]) -> None:
        """Score and store a batch (in a worker thread: one hop for both)."""
        if items:
            self._insert_rows(self._score(items))
            self.progress.stored += len(items)

    def _score(self, items: Sequence[_Answered]) -> list[dict[str, Any]]:
        """Rows to insert: each answer with every scorer's verdict (none for a failed answer)."""
        scores: list[dict[str, dict[str, Any]]] = [{} for _ in items]
        for scorer in self.inputs.scorers:
            chosen, inputs = [], []
            for index, item in enumerate(items):
                scoring = self._scoring_input(scorer, item)
                if isinstance(scoring, Score):
                    scores[index][scorer.name] = _stored(scoring)
                elif scoring is not None:
                    chosen.append(index)
                    inputs.append(scoring)
            for index, score in zip(chosen, score_batch(scorer, inputs), strict=True):
                scores[index][scorer.name] = _stored(score)
        return [_row(self.inputs.run_id, item, scores[i]) for i, item in enumerate(items)]

    def _scoring_input(self, scorer: Scorer, item: _Answered) -> ScoringInput | Score | None:
        """What ``scorer`` reads for ``item``; a failed score; or ``None``: not scored."""
        answer, sample = item.answer, item.sample
        metadata: dict[str, Any] = dict(sample.metadata)
        output = answer.output
        if answer.error is not None or output is None:
            # A guard's refusal is the answer a safety scorer judges (red-team: a pass);
            # any other failure leaves the sample unscored, never a 0.
            if not (scores_blocked(scorer) and is_guard_block(answer.error)):
                return None
            metadata["blocked"], output = True, ""
        if needs_baseline(scorer):
            if item.target == self.inputs.baseline:
                return None
            base = self._baseline_answers.get(sample.id)
            if base is None or base.output is None:
                return Score.failed(
                    f"{scorer.name}: the baseline {self.inputs.baseline} has no answer to "
                    "this sample to compare with"
                )
            metadata[BASELINE_OUTPUT] = base.output
        messages = sample.messages
        return ScoringInput(
            output=output,
            expected=sample.expected,
            input=messages if messages is not None else (sample.prompt or ""),
            metadata=metadata,
            latency_ms=answer.latency_ms,
            cost=None,
        )

    def _insert_rows(self, rows: list[dict[str, Any]]) -> None:
        with self.store.write() as session:
            session.connection().execute(self._insert, rows)

    def _count_stored(self) -> int:
        with self.store.read() as session:
            return int(
                session.execute(
                    select(func.count())
                    .select_from(EvalResultRow)
                    .where(EvalResultRow.run_id == self.inputs.run_id)
                ).scalar_one()
            )

    def _report(self, last: bool) -> None:
        """Look for a reason to stop; progress and checkpoint once a second."""
        context = self.context
        now = time.monotonic()
        if self._stop is None and context is not None and context.stopping:
            self._stop = "stopping"
        if self._stop is None and (last or now - self._checked_at >= CANCEL_CHECK_S):
            self._checked_at = now
            if (context is not None and context.cancelled) or self._run_cancelled():
                self._stop = "cancelled"
        if context is None or (not last and now - self.progress.reported_at < REPORT_EVERY_S):
            return
        self.progress.reported_at = now
        stored = min(self.progress.stored, self.inputs.total)
        context.progress(stored / self.inputs.total if self.inputs.total else 1.0)
        elapsed = self._elapsed_before_s + now - self._started
        context.checkpoint(
            {"stored": stored, "total": self.inputs.total, "elapsed_s": round(elapsed, 3)}
        )

    def _run_cancelled(self) -> bool:
        with self.store.read() as session:
            status = session.execute(
                select(EvalRunRow.status).where(EvalRunRow.id == self.inputs.run_id)
            ).scalar_one_or_none()
        return status == "cancelled"


def _stored(score: Score) -> dict[str, Any]:
    details: Mapping[str, Any] = score.details
    try:
        orjson.dumps(details)
    except TypeError:  # a plugin's details must not stop the batch from being stored
        details = {"note": "the scorer's details were not JSON and were left out"}
    return {"value": score.value, "error": score.error, "details": dict(details)}


def _row(run_id: int, item: _Answered, scores: dict[str, dict[str, Any]]) -> dict[str, Any]:
    answer = item.answer
    return {
        "run_id": run_id,
        "sample_id": item.sample.id,
        "position": item.sample.position,
        "target": item.target,
        "output": answer.output,
        "error": answer.error,
        "trace_id": answer.trace_id or None,
        "model": answer.model,
        "version": answer.version,
        "latency_ms": answer.latency_ms,
        "tokens_in": answer.tokens_in,
        "tokens_out": answer.tokens_out,
        "cost": None,
        "scores": scores,
    }
