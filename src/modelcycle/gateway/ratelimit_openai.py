"""Rate limits the OpenAI way: the 429 error, the ``x-ratelimit-*`` headers, token estimates.

OpenAI clients read ``Retry-After`` (the official Python SDK prefers
``retry-after-ms``) to back off, and ``x-ratelimit-{limit,remaining,reset}-
{requests,tokens}`` to pace themselves; ``reset`` is the time until the
budget is full again, written like ``20ms``, ``1.5s`` or ``6m0s``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from modelcycle.errors import RateLimited
from modelcycle.gateway.ratelimit_gcra import BucketState, Verdict
from modelcycle.gateway.schemas import InferenceRequest

CHARS_PER_TOKEN = 4


def estimate_tokens(request: InferenceRequest) -> int:
    """The prompt's size in tokens, estimated at 4 characters a token (at least 1)."""
    if request.messages is not None:
        chars = sum(len(message.content) + 4 for message in request.messages)
    elif request.prompts is not None:
        chars = sum(
            len(p) if isinstance(p, str) else len(p) * CHARS_PER_TOKEN for p in request.prompts
        )
    else:
        chars = len(request.prompt or "")
    return max(1, math.ceil(chars / CHARS_PER_TOKEN))


def reset_text(seconds: float) -> str:
    """A duration as OpenAI writes it in ``x-ratelimit-reset-*``: ``20ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{round(rest, 3):g}s"


def rate_headers(states: Sequence[BucketState]) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers for the tightest requests and tokens budgets."""
    tightest: dict[str, tuple[float, float, BucketState]] = {}
    for found in states:
        rank = (found.remaining / found.bucket.limit, -found.reset_s)
        best = tightest.get(found.bucket.kind)
        if best is None or rank < best[:2]:
            tightest[found.bucket.kind] = (*rank, found)
    headers: dict[str, str] = {}
    for kind, (_, _, found) in tightest.items():
        headers[f"x-ratelimit-limit-{kind}"] = str(found.bucket.limit)
        headers[f"x-ratelimit-remaining-{kind}"] = str(found.remaining)
        headers[f"x-ratelimit-reset-{kind}"] = reset_text(found.reset_s)
    return headers


def refusal(verdict: Verdict, headers: dict[str, str]) -> RateLimited:
    """OpenAI's 429 for a refused admission, with ``Retry-After`` and ``retry-after-ms``."""
    denied = verdict.denied
    assert denied is not None
    wait = verdict.retry_after_s
    per = "requests per min (RPM)" if denied.kind == "requests" else "tokens per min (TPM)"
    return RateLimited(
        f"Rate limit reached for {denied.scope} on {per}: Limit {denied.limit}, "
        f"Requested {denied.cost}. Please try again in {reset_text(wait)}.",
        code="rate_limit_exceeded",
        headers={
            **headers,
            "Retry-After": str(max(1, math.ceil(wait))),
            "retry-after-ms": str(max(1, math.ceil(wait * 1000))),
        },
    )
