"""``llm_judge`` and ``llm_judge_pairwise``: a deployment grades the answers.

The judge is any deployment (or ``NAME@VERSION``), called through the gateway
like production traffic, so its calls are traced, limited and billed like any
other. Inside an evaluation run (or online evaluation) the run's caller is
found with :func:`~modelcycle.evaluate.caller.current_caller`; elsewhere pass
one to the constructor.

A judge's answer that cannot be read is never guessed at: the judge is asked
again with a stricter reminder, up to ``retries`` times, and the sample then
gets an error holding what the judge said, never a value.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import Field

from modelcycle.backends import GenerationParams
from modelcycle.errors import InvalidInput
from modelcycle.evaluate.caller import Answer, SyncCaller, current_caller
from modelcycle.evaluate.scorers import judge_templates as templates
from modelcycle.evaluate.scorers.judge_parse import Verdict, parse_score, parse_verdict
from modelcycle.evaluate.scorers.options import ScorerOptions, parse_options
from modelcycle.evaluate.scorers.types import Score, Scorer, ScoringInput, missing_reference

NO_CALLER = "llm_judge needs a model: run it inside an evaluation run or online evaluation"
ON_LOOP = (
    "llm_judge: scorers that call a model must run in a worker thread "
    "(asyncio.to_thread), not on the event loop"
)
BASELINE_KEY = "_baseline_output"
"""The sample metadata key where a run puts the baseline's answer for pairwise scorers."""

REASONING_CHARS = 500
RAW_CHARS = 1000

Message = dict[str, str]


class JudgeCaller(Protocol):
    """What calls the judge: ``SyncCaller`` in a run, any look-alike elsewhere."""

    def complete(
        self,
        target: str,
        messages: Sequence[Mapping[str, Any]],
        params: GenerationParams | None = None,
        *,
        timeout_s: float = ...,
    ) -> Answer:
        """``target``'s answer to chat ``messages`` (never raises for a failed call)."""
        ...


class JudgeCallOptions(ScorerOptions):
    """Options every judge scorer takes: who judges and how it is called."""

    judge: str = Field(
        min_length=1,
        max_length=200,
        description="The deployment, or NAME@VERSION, that judges (required).",
    )
    retries: int = Field(
        default=2, ge=0, le=10, description="Extra attempts after an unreadable or failed answer."
    )
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="The judge's temperature.")
    max_tokens: int = Field(
        default=1024,
        ge=16,
        le=32768,
        description="Most tokens per judge answer (reasoning included).",
    )
    parallel: int = Field(
        default=4, ge=1, le=64, description="Judge calls in flight at once within one batch."
    )
    timeout_s: float = Field(
        default=120.0, gt=0.0, le=3600.0, description="Seconds to wait for one judge answer."
    )


class JudgeOptions(JudgeCallOptions):
    """Options of ``llm_judge``."""

    rubric: str = Field(
        default="helpfulness",
        min_length=1,
        max_length=20_000,
        description="A built-in rubric's name, or a template with {output} and optionally "
        "{input}, {expected}, {context}, {min}, {max}.",
    )
    scale_min: int = Field(default=1, ge=-1000, le=1000, description="The lowest score.")
    scale_max: int = Field(default=5, ge=-1000, le=1000, description="The highest score.")


class PairwiseOptions(JudgeCallOptions):
    """Options of ``llm_judge_pairwise``."""

    criteria: str = Field(
        default=templates.DEFAULT_CRITERIA,
        min_length=1,
        max_length=5000,
        description="What makes one response better than the other, in words.",
    )


@dataclass(frozen=True, slots=True)
class _Attempts:
    """The outcome of asking the judge until it answers readably."""

    parsed: Any
    """The parser's result of the last answer (it has ``problem``)."""
    text: str
    attempts: int
    error: str | None
    trace_id: str | None


class _JudgeBase(Scorer):
    """Calling the judge with retries; sample-free, so safe across threads."""

    name: str
    options: JudgeCallOptions

    def __init__(self, caller: JudgeCaller | None, retry_delay_s: float):
        self._caller = caller
        self._retry_delay_s = retry_delay_s

    def score(self, sample: ScoringInput) -> Score:
        """The judge's score of one sample."""
        return self.score_many([sample])[0]

    def score_many(self, samples: Sequence[ScoringInput]) -> list[Score]:
        """Every sample judged, ``parallel`` judge calls overlapping."""
        # Resolved here: pool threads do not inherit the run's context variables.
        caller = self._caller or current_caller()
        if caller is None:
            return [Score.failed(NO_CALLER) for _ in samples]
        if isinstance(caller, SyncCaller) and _on_event_loop():
            # The bridge would block the very loop that must serve the judge's call.
            return [Score.failed(ON_LOOP) for _ in samples]
        if self.options.parallel == 1 or len(samples) <= 1:
            return [self._judge(caller, sample) for sample in samples]
        with ThreadPoolExecutor(self.options.parallel, thread_name_prefix=self.name) as pool:
            return list(pool.map(lambda sample: self._judge(caller, sample), samples))

    def _judge(self, caller: JudgeCaller, sample: ScoringInput) -> Score:
        raise NotImplementedError

    def _params(self) -> GenerationParams:
        return GenerationParams(
            max_tokens=self.options.max_tokens, temperature=self.options.temperature
        )

    def _ask(
        self,
        caller: JudgeCaller,
        messages: list[Message],
        parse: Callable[[str], Any],
        reminder: Callable[[str, bool], str],
    ) -> _Attempts:
        """Ask until ``parse`` reads the answer, re-asking with ``reminder`` when it cannot."""
        conversation = list(messages)
        text, error, trace_id, parsed = "", None, None, None
        for attempt in range(1, self.options.retries + 2):
            answer = self._complete(caller, conversation)
            trace_id = answer.trace_id or trace_id
            if answer.output is None:
                error, text, parsed = answer.error or "the judge returned no answer", "", None
                if attempt <= self.options.retries and self._retry_delay_s > 0:
                    time.sleep(self._retry_delay_s * 2 ** (attempt - 1))
                conversation = list(messages)  # a transport failure: ask the same again
                continue
            text, error = answer.output, None
            parsed = parse(text)
            if parsed.problem is None:
                return _Attempts(parsed, text, attempt, None, trace_id)
            truncated = answer.finish_reason == "length"
            conversation = [
                *messages,
                {"role": "assistant", "content": text[:4000]},
                {"role": "user", "content": reminder(parsed.problem, truncated)},
            ]
        return _Attempts(parsed, text, self.options.retries + 1, error, trace_id)

    def _complete(self, caller: JudgeCaller, messages: list[Message]) -> Answer:
        try:
            return caller.complete(
                self.options.judge, messages, self._params(), timeout_s=self.options.timeout_s
            )
        except TimeoutError:
            return Answer(
                None, error=f"the judge did not answer within {self.options.timeout_s:g} s"
            )
        except Exception as exc:  # a broken bridge must fail this sample, not the run
            return Answer(None, error=f"{type(exc).__name__}: {exc}")

    def _failed(self, asked: _Attempts, **details: Any) -> Score:
        if asked.error is not None:
            reason = f"{self.name}: the judge {self.options.judge} failed: {asked.error}"
        else:
            reason = f"{self.name}: unreadable judge answer: {asked.parsed.problem}"
        return Score.failed(
            f"{reason} (after {asked.attempts} attempt{'' if asked.attempts == 1 else 's'})",
            judge=self.options.judge,
            attempts=asked.attempts,
            raw=_truncate(asked.text, RAW_CHARS),
            trace_id=asked.trace_id,
            **details,
        )


class LLMJudge(_JudgeBase):
    """``llm_judge``: a judge model rates each answer on a rubric, normalised to [0, 1].

    The judge reads the rubric (built-in or custom), reasons, and ends with
    ``Score: N`` on ``scale_min``..``scale_max``; the value is ``(N - min) / (max -
    min)``. ``details`` holds ``raw_score``, ``reasoning`` (first 500 characters),
    ``attempts``, ``judge``, ``rubric`` and the judge call's ``trace_id``.
    """

    name = "llm_judge"
    kind = "continuous"
    higher_is_better = True
    options: JudgeOptions

    def __init__(
        self,
        options: JudgeOptions,
        caller: JudgeCaller | None = None,
        *,
        retry_delay_s: float = 0.5,
    ):
        super().__init__(caller, retry_delay_s)
        if options.scale_min >= options.scale_max:
            raise InvalidInput(
                f"scorer llm_judge: option 'scale_min' ({options.scale_min}) must be below "
                f"'scale_max' ({options.scale_max})",
                param="options",
            )
        try:
            self.rubric = templates.rubric_of(options.rubric)
        except InvalidInput as exc:
            raise InvalidInput(
                f"scorer llm_judge: option 'rubric': {exc.message}", param="options"
            ) from None
        self.options = options
        self.needs_reference = self.rubric.needs_expected

    def _judge(self, caller: JudgeCaller, sample: ScoringInput) -> Score:
        if self.rubric.needs_expected and sample.expected is None:
            return missing_reference(self.name)
        context = sample.metadata.get("context")
        if self.rubric.needs_context and context is None:
            return Score.failed(
                f"{self.name}: rubric {self.rubric.name} needs the sample's metadata 'context'"
            )
        low, high = self.options.scale_min, self.options.scale_max
        prompt = self.rubric.template.format(
            input=templates.render_input(sample.input),
            output=sample.output,
            expected=sample.expected or "",
            context=templates.render_context(context) if context is not None else "",
            min=low,
            max=high,
        ) + templates.ANSWER_FORMAT.format(min=low, max=high)
        messages = [
            {"role": "system", "content": templates.SYSTEM},
            {"role": "user", "content": prompt},
        ]
        asked = self._ask(
            caller,
            messages,
            lambda text: parse_score(text, low, high),
            lambda problem, cut: templates.score_reminder(problem, low, high, cut),
        )
        if asked.error is not None or asked.parsed is None or asked.parsed.raw is None:
            return self._failed(asked, rubric=self.rubric.name)
        raw: float = asked.parsed.raw
        return Score.of(
            (raw - low) / (high - low),
            raw_score=raw,
            reasoning=_truncate(asked.parsed.reasoning, REASONING_CHARS),
            attempts=asked.attempts,
            judge=self.options.judge,
            rubric=self.rubric.name,
            trace_id=asked.trace_id,
        )


_CANDIDATE_WINS: dict[tuple[bool, Verdict], float] = {
    # (candidate shown first, verdict) -> the candidate's score
    (True, "A"): 1.0,
    (True, "B"): 0.0,
    (False, "A"): 0.0,
    (False, "B"): 1.0,
}


class PairwiseJudge(_JudgeBase):
    """``llm_judge_pairwise``: is the candidate's answer better than the baseline's?

    The judge sees both answers twice, candidate first then baseline first, and
    each time says ``[[A]]``, ``[[B]]`` or ``[[C]]`` (tie): 1 when both orders
    prefer the candidate, 0 when both prefer the baseline, 0.5 for a tie, and
    0.5 with ``details.consistent`` false when the orders disagree (the judge
    preferred a position, not an answer). The baseline's answer comes in the
    sample's metadata ``_baseline_output``, put there by the run.
    """

    name = "llm_judge_pairwise"
    kind = "continuous"
    needs_reference = False
    higher_is_better = True
    needs_baseline = True
    options: PairwiseOptions

    def __init__(
        self,
        options: PairwiseOptions,
        caller: JudgeCaller | None = None,
        *,
        retry_delay_s: float = 0.5,
    ):
        super().__init__(caller, retry_delay_s)
        self.options = options

    def _judge(self, caller: JudgeCaller, sample: ScoringInput) -> Score:
        baseline = sample.metadata.get(BASELINE_KEY)
        if not isinstance(baseline, str):
            return Score.failed(
                f"{self.name}: the sample has no baseline answer to compare with "
                f"(metadata '{BASELINE_KEY}'; a run with a baseline target provides it)"
            )
        verdicts: dict[str, Verdict] = {}
        values: list[float] = []
        attempts = 0
        trace_ids: list[str | None] = []
        for candidate_first in (True, False):
            first, second = (
                (sample.output, baseline) if candidate_first else (baseline, sample.output)
            )
            asked = self._ask(
                caller,
                self._messages(sample, first, second),
                parse_verdict,
                templates.verdict_reminder,
            )
            attempts += asked.attempts
            trace_ids.append(asked.trace_id)
            order = "candidate_first" if candidate_first else "baseline_first"
            if asked.error is not None or asked.parsed is None or asked.parsed.verdict is None:
                return self._failed(asked, order=order, verdicts=verdicts)
            verdict: Verdict = asked.parsed.verdict
            verdicts[order] = verdict
            values.append(_CANDIDATE_WINS.get((candidate_first, verdict), 0.5))
        consistent = values[0] == values[1]
        return Score.of(
            values[0] if consistent else 0.5,
            consistent=consistent,
            verdicts=verdicts,
            attempts=attempts,
            judge=self.options.judge,
            trace_ids=trace_ids,
        )

    def _messages(self, sample: ScoringInput, first: str, second: str) -> list[Message]:
        reference = ""
        if sample.expected is not None:
            reference = f"[Reference answer]\n{sample.expected}\n[End of reference answer]\n\n"
        prompt = templates.PAIRWISE.format(
            criteria=self.options.criteria,
            reference=reference,
            input=templates.render_input(sample.input),
            first=first,
            second=second,
        )
        return [
            {"role": "system", "content": templates.SYSTEM},
            {"role": "user", "content": prompt},
        ]


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_llm_judge(options: Mapping[str, Any]) -> Scorer:
    """The ``llm_judge`` scorer (options: ``JudgeOptions``)."""
    return LLMJudge(parse_options(JudgeOptions, options, LLMJudge.name))


def build_llm_judge_pairwise(options: Mapping[str, Any]) -> Scorer:
    """The ``llm_judge_pairwise`` scorer (options: ``PairwiseOptions``)."""
    return PairwiseJudge(parse_options(PairwiseOptions, options, PairwiseJudge.name))
