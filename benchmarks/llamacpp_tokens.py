"""Tokens/s of the embedded GGUF: llama-cpp-python directly vs through the gateway.

Both sides generate the same number of tokens from the same prompt with greedy
sampling and no stop sequence (``ignore_eos`` is not available in the
completion API, so a prompt that keeps the model talking is used and the token
counts are printed). Run: ``.venv/bin/python benchmarks/llamacpp_tokens.py``.
The ratio (gateway / direct) is what counts; issue 3 asks for >= 0.9.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from llama_cpp import Llama

from modelcycle.api import create_app
from modelcycle.services import embedded_model_path
from modelcycle.testing import make_key, make_services, make_settings
from modelcycle.types import Role

PROMPT = "Write a long story about a dragon who learns to cook. Once upon a time,"
TOKENS = 128
ROUNDS = 3


def direct() -> list[float]:
    llm = Llama(model_path=embedded_model_path(), n_ctx=2048, verbose=False)
    llm.create_completion(PROMPT, max_tokens=8, temperature=0)  # warm up
    rates = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        out = llm.create_completion(PROMPT, max_tokens=TOKENS, temperature=0)
        rates.append(out["usage"]["completion_tokens"] / (time.perf_counter() - started))
    llm.close()
    return rates


async def gateway(stream: bool) -> list[float]:
    home = Path(tempfile.mkdtemp())
    services = make_services(make_settings(home, register_default_model=True))
    key = make_key(services, Role.APP).key
    transport = httpx.ASGITransport(app=create_app(services))
    body = {"model": "default", "prompt": PROMPT, "temperature": 0, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    rates = []
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://bench",
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    ) as client:
        await client.post("/v1/completions", json={**body, "max_tokens": 8, "stream": False})
        for _ in range(ROUNDS):
            started = time.perf_counter()
            response = await client.post("/v1/completions", json={**body, "max_tokens": TOKENS})
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            if stream:
                usage_line = response.text.split("\n\n")[-3]
                tokens = httpx.Response(200, content=usage_line[6:]).json()["usage"]
            else:
                tokens = response.json()["usage"]
            rates.append(tokens["completion_tokens"] / elapsed)
    await services.gateway.aclose()
    services.close()
    return rates


def main() -> None:
    """Print tokens/s of each path and the ratios measured in this run."""
    base = statistics.median(direct())
    whole = statistics.median(asyncio.run(gateway(stream=False)))
    streamed = statistics.median(asyncio.run(gateway(stream=True)))
    print(f"llama-cpp-python directly : {base:7.1f} tokens/s")
    print(f"gateway, whole answer     : {whole:7.1f} tokens/s  ratio {whole / base:.3f}")
    print(f"gateway, streamed (SSE)   : {streamed:7.1f} tokens/s  ratio {streamed / base:.3f}")


if __name__ == "__main__":
    main()
