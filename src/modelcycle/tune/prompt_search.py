"""The ``prompt-search`` tuning method: the best prompt for a version, within a call budget.

Candidates (``modelcycle.tune.prompt_space``: system prompts x few-shot sets x
sampling parameters) race on an evaluation dataset by successive halving: all
of them answer the same few samples (in a seeded order), the better half goes
on to twice as many samples, and so on until one is left, every sample is used
or the budget is spent. The winner then answers as many further samples as the
budget still allows, so its score rests on the most data. Ties go to the
candidate that used fewer tokens per call.

Every call goes through the gateway, to the base version by a one-route
deployment made for the search (traced like any request), with the candidate
applied the way a version whose params hold it serves every caller: for chat
versions its system message and examples are put in front of the sample's
messages (``backends.prompting.with_prompt_params``); for ``completion``
versions the prompt is rendered by ``render_chat`` with the new version's
params. So the prompt searched is the prompt served once the winner is
registered with :func:`params_for_version` (a new version on the same weights).

The budget counts calls to the model searched; a call that fails scores 0, a
sample the scorer cannot score (``None``) is left out of the mean. The scorer
is injected (tuning cannot import evaluation): see
``modelcycle.tune.prompt_search_job.scorer_function``.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelcycle.access import Principal
from modelcycle.backends import GenerationParams, Message
from modelcycle.backends.prompting import render_chat, uses_template, with_prompt_params
from modelcycle.deploy import ResolvedVersion, single_route
from modelcycle.errors import InvalidInput, ModelcycleError
from modelcycle.gateway import Gateway, InferenceRequest
from modelcycle.gateway.schemas import CallContext
from modelcycle.store.datasets import EvalSample
from modelcycle.tune.prompt_space import Candidate, SearchSpace, parse_space

ScoreRow = tuple[str, str | None, Any]
"""(the model's output, the expected answer, the sample's input) for one answer."""
ScoreFn = Callable[[list[ScoreRow]], list[float | None]]
"""Scores answers (higher is better); ``None`` for an answer it cannot score."""
ScoreFactory = Callable[[str, Mapping[str, Any]], ScoreFn]
"""Builds a ``ScoreFn`` from a scorer name and its options."""
Report = Callable[[float, dict[str, Any], str], None]
"""Told after each round: progress (0..1), metrics, a log line."""

FAILED_CALL_SCORE = 0.0
DEFAULT_CONCURRENCY = 4


# -- results ---------------------------------------------------------------------------


@dataclass
class Trial:
    """How one candidate did: its score on each sample it answered, and what it cost."""

    index: int
    candidate: Candidate
    scores: dict[int, float | None] = field(default_factory=dict)
    """Sample position (in the search's order) -> score."""
    calls: int = 0
    errors: int = 0
    tokens: int = 0
    eliminated_in: int | None = None
    """The round after which it was dropped; ``None``: it was never dropped."""

    @property
    def values(self) -> list[float]:
        """The scores that count (not ``None``), in sample order."""
        return [v for _, v in sorted(self.scores.items()) if v is not None]

    @property
    def n(self) -> int:
        """Samples with a score."""
        return len(self.values)

    @property
    def score(self) -> float | None:
        """Mean score; ``None`` before any sample was scored."""
        values = self.values
        return statistics.fmean(values) if values else None

    @property
    def tokens_per_call(self) -> float:
        """Prompt and answer tokens per call (the tie-breaker: fewer wins)."""
        return self.tokens / self.calls if self.calls else 0.0

    def rank_key(self) -> tuple[float, float, int]:
        """Sorts best first: higher score, then fewer tokens, then the earlier candidate."""
        score = self.score
        return (-score if score is not None else math.inf, self.tokens_per_call, self.index)

    def label_score(self) -> str:
        """The candidate and its score, for logs."""
        score = self.score
        shown = f"{score:.3f}" if score is not None else "no score"
        return f"{self.candidate.label()} ({shown} on {self.n} samples)"

    def as_json(self) -> dict[str, Any]:
        """The trial as a job's artifacts store it."""
        return {
            "params": self.candidate.overlay(),
            "label": self.candidate.label(),
            "score": self.score,
            "n": self.n,
            "calls": self.calls,
            "errors": self.errors,
            "tokens_per_call": round(self.tokens_per_call, 2),
            "eliminated_in": self.eliminated_in,
        }


@dataclass(frozen=True)
class SearchResult:
    """The winner, its score (with a 95% interval) and every trial."""

    base: ResolvedVersion
    best: Candidate
    best_score: float | None
    ci: tuple[float, float] | None
    """Normal-approximation 95% interval of the winner's mean score (``None`` below 2 samples)."""
    trials: list[Trial]
    calls_used: int
    budget: int
    rounds: int
    stopped: bool
    """``should_stop`` ended the search early; the winner is the best so far."""

    @property
    def best_params(self) -> dict[str, Any]:
        """The params the winner sets (``params_for_version`` adds them to the base's)."""
        return self.best.overlay()

    @property
    def best_trial(self) -> Trial:
        """The winner's trial."""
        return next(t for t in self.trials if t.candidate == self.best)

    def as_json(self) -> dict[str, Any]:
        """The result as a job's artifacts store it."""
        return {
            "base": f"{self.base.model}@{self.base.version}",
            "best_params": self.best_params,
            "best_label": self.best.label(),
            "best_score": self.best_score,
            "ci": list(self.ci) if self.ci else None,
            "n": self.best_trial.n,
            "calls_used": self.calls_used,
            "budget": self.budget,
            "rounds": self.rounds,
            "stopped": self.stopped,
            "trials": [t.as_json() for t in self.trials],
        }


def params_for_version(base_params: Mapping[str, Any], best: Candidate) -> dict[str, Any]:
    """The params of the new version: the base's, with the winner's prompt and sampling.

    The winner's examples come after any the base version already has (the
    order in which the search served them); its system prompt replaces the base's.
    """
    params = dict(base_params)
    overlay = best.overlay()
    examples = overlay.pop("few_shot", None)
    params.update(overlay)
    if examples:
        earlier = base_params.get("few_shot")
        params["few_shot"] = [*(earlier if isinstance(earlier, list) else []), *examples]
    return params


# -- the search --------------------------------------------------------------------------


def _chat(sample: EvalSample) -> tuple[Message, ...]:
    messages = sample.messages
    if messages is not None:
        return tuple(
            Message(str(m.get("role", "user")), str(m.get("content") or "")) for m in messages
        )
    if sample.prompt is not None:  # a completion prompt is asked as one user message
        return (Message("user", sample.prompt),)
    raise InvalidInput(f"sample {sample.position} has neither 'messages' nor 'prompt'")


def _initial_plan(
    candidates: int, budget: int, samples: int, rng: random.Random
) -> tuple[list[int], int]:
    """(candidates raced, samples each answers first) so that halving fits the budget."""

    def cost(n: int) -> float:  # calls per first-round sample, over all rounds
        rounds = math.ceil(math.log2(n)) if n > 1 else 0
        return n * (1 + rounds / 2)

    first = min(samples, int(budget // cost(candidates)))
    if first >= 1:
        return list(range(candidates)), first
    fits = max(n for n in range(1, candidates + 1) if n == 1 or cost(n) <= budget)
    return sorted(rng.sample(range(candidates), fits)), 1


class _Search:
    def __init__(
        self,
        gateway: Gateway,
        principal: Principal,
        base: ResolvedVersion,
        samples: Sequence[EvalSample],
        score: ScoreFn,
        budget: int,
        should_stop: Callable[[], bool],
        concurrency: int,
        metadata: Mapping[str, Any] | None,
    ):
        self.gateway, self.principal, self.base = gateway, principal, base
        self.target = f"{base.model}@{base.version}"  # pinned: an alias may move meanwhile
        self.deployment = single_route(self.target, actor="prompt-search", retries=0)
        self.samples, self.chats = samples, [_chat(s) for s in samples]
        self.score, self.budget = score, budget
        self.should_stop, self.stopped = should_stop, False
        self.used = 0
        self.completion = uses_template(base.params)
        self.metadata = {"prompt_search": True, **(metadata or {})}
        self._slots = asyncio.Semaphore(max(1, concurrency))

    def request(self, candidate: Candidate, chat: Sequence[Message]) -> InferenceRequest:
        """The request a candidate sends for one sample (see the module docstring)."""
        params = GenerationParams(
            temperature=candidate.temperature, max_tokens=candidate.max_tokens
        )
        context = CallContext(metadata=self.metadata)
        if self.completion:
            version = params_for_version(self.base.params, candidate)
            prompt, rendered = render_chat(chat, version, params)
            return InferenceRequest(
                endpoint="completions", deployment=self.target, messages=None, prompt=prompt,
                params=rendered, user=None, stream=False, context=context,
            )  # fmt: skip
        messages = with_prompt_params(chat, candidate.overlay())
        return InferenceRequest(
            endpoint="chat.completions", deployment=self.target, messages=messages, prompt=None,
            params=params, user=None, stream=False, context=context,
        )  # fmt: skip

    async def _call(self, trial: Trial, position: int) -> tuple[int, str | None]:
        """(tokens, output or ``None`` when the call failed or never started)."""
        async with self._slots:
            if self.stopped or self.should_stop():
                self.stopped = True
                return -1, None
            self.used += 1
            trial.calls += 1
            request = self.request(trial.candidate, self.chats[position])
            try:
                served = await self.gateway.generate(
                    self.principal, request, deployment=self.deployment
                )
            except ModelcycleError:
                trial.errors += 1
                return 0, None
        usage = served.usage or served.completion.usage
        trial.tokens += usage.prompt_tokens + usage.completion_tokens
        text = served.completion.text
        # A completion version's chat answers lose the space after the frame; so do these.
        return 0, text.lstrip() if self.completion else text

    async def extend(self, trials: Sequence[Trial], order: Sequence[int], upto: int) -> None:
        """Let each trial answer the samples ``order[:upto]`` it has not answered yet."""
        work = [(t, p) for t in trials for p in order[:upto] if p not in t.scores]
        assert self.used + len(work) <= self.budget, "planned past the budget"
        answers = await asyncio.gather(*(self._call(t, p) for t, p in work))
        rows: list[ScoreRow] = []
        scored: list[tuple[Trial, int]] = []
        for (trial, position), (flag, output) in zip(work, answers, strict=True):
            if flag < 0:
                continue  # stopped before it was sent
            if output is None:
                trial.scores[position] = FAILED_CALL_SCORE
                continue
            sample = self.samples[position]
            rows.append((output, sample.expected, sample.input))
            scored.append((trial, position))
        values = await asyncio.to_thread(self.score, rows) if rows else []
        if len(values) != len(rows):
            raise InvalidInput(f"the scorer returned {len(values)} scores for {len(rows)} answers")
        for (trial, position), value in zip(scored, values, strict=True):
            trial.scores[position] = None if value is None else float(value)


async def run_prompt_search(
    *,
    gateway: Gateway,
    principal: Principal,
    base: ResolvedVersion | str,
    samples: Sequence[EvalSample],
    score: ScoreFn,
    space: SearchSpace | Mapping[str, Any],
    budget: int,
    seed: int = 0,
    report: Report | None = None,
    should_stop: Callable[[], bool] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    metadata: Mapping[str, Any] | None = None,
) -> SearchResult:
    """Race the candidates of ``space`` on ``samples``; see the module docstring.

    ``base``: the version searched (``NAME@VERSION``, ``NAME@alias`` or resolved);
    ``budget``: most model calls; ``seed`` fixes the sample order and any
    subset of candidates drawn when the grid is too large for the budget.
    """
    if budget < 1:
        raise InvalidInput("budget must be at least 1 call", param="budget")
    if not samples:
        raise InvalidInput("the evaluation dataset has no samples to search on", param="dataset")
    if not isinstance(base, ResolvedVersion):
        base = await gateway.resolver.version(principal.project_id, base)
    if not isinstance(space, SearchSpace):
        space = parse_space(space, seed=seed)
    rng = random.Random(seed)  # noqa: S311 - a reproducible order, not a secret
    order = list(range(len(samples)))
    rng.shuffle(order)
    candidates = space.candidates()
    chosen, size = _initial_plan(len(candidates), budget, len(samples), rng)
    trials = [Trial(i, candidates[i]) for i in chosen]
    search = _Search(
        gateway, principal, base, samples, score, budget,
        should_stop or (lambda: False), concurrency, metadata,
    )  # fmt: skip
    tell = report or (lambda _progress, _metrics, _log: None)
    tell(0.0, {"candidates": len(trials), "budget": budget},
         f"prompt search on {search.target}: {len(trials)} of {len(candidates)} candidates, "
         f"{len(samples)} samples, budget {budget} calls")  # fmt: skip
    alive, answered, rounds = list(trials), 0, 0
    while not search.stopped:
        upto = min(size, len(samples))
        room = (budget - search.used) // len(alive)
        upto = min(upto, answered + room)
        if upto <= answered:
            break  # the budget is spent
        await search.extend(alive, order, upto)
        answered, rounds = upto, rounds + 1
        alive.sort(key=Trial.rank_key)
        leader = alive[0]
        tell(search.used / budget, _metrics(search, rounds, alive, leader, answered),
             f"round {rounds}: {len(alive)} candidates on {answered} samples; best "
             f"{leader.label_score()}")  # fmt: skip
        if len(alive) == 1 or answered >= len(samples):
            break
        keep = math.ceil(len(alive) / 2)
        for dropped in alive[keep:]:
            dropped.eliminated_in = rounds
        alive, size = alive[:keep], size * 2
    winner = min(alive, key=Trial.rank_key)
    left = budget - search.used
    if not search.stopped and left > 0 and answered < len(samples):
        await search.extend([winner], order, min(len(samples), answered + left))
    result = SearchResult(
        base=base, best=winner.candidate, best_score=winner.score, ci=_interval(winner.values),
        trials=sorted(trials, key=Trial.rank_key), calls_used=search.used, budget=budget,
        rounds=rounds, stopped=search.stopped,
    )  # fmt: skip
    tell(1.0 if not search.stopped else search.used / budget,
         _metrics(search, rounds, [winner], winner, winner.n),
         f"{'stopped; best so far' if search.stopped else 'winner'}: {winner.label_score()} "
         f"({search.used} of {budget} calls)")  # fmt: skip
    return result


def _metrics(
    search: _Search, rounds: int, alive: Sequence[Trial], leader: Trial, samples: int
) -> dict[str, Any]:
    return {
        "round": rounds,
        "calls": search.used,
        "candidates_left": len(alive),
        "samples": samples,
        "best_score": leader.score,
    }


def _interval(values: Sequence[float]) -> tuple[float, float] | None:
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    half = 1.96 * statistics.stdev(values) / math.sqrt(len(values))
    return mean - half, mean + half
