"""``POST /v1/embeddings``: OpenAI's list shape, determinism, base64, dimensions, bad input."""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import openai
import pytest

from gateway.harness import Env


@pytest.fixture
def vectors(env: Env) -> str:
    env.deploy("vectors", (env.version("embedder", "mock://echo", embedding_dim=8), 100))
    return "vectors"


def cosine(a: list[float], b: list[float]) -> float:
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(math.fsum(x * x for x in a) * math.fsum(y * y for y in b))


async def test_embeddings_through_the_sdk(env: Env, vectors: str) -> None:
    result = await env.openai().embeddings.create(
        model=vectors, input=["the cat", "the cat", "a dog barks"]
    )
    assert result.object == "list"
    assert result.model == vectors
    assert [item.index for item in result.data] == [0, 1, 2]
    assert all(item.object == "embedding" for item in result.data)
    assert all(len(item.embedding) == 8 for item in result.data)
    first, same, other = (item.embedding for item in result.data)
    assert cosine(first, same) == pytest.approx(1.0)
    assert cosine(first, other) < 0.99
    assert math.fsum(x * x for x in first) == pytest.approx(1.0)  # unit length
    assert result.usage.prompt_tokens == 2 + 2 + 3
    assert result.usage.total_tokens == result.usage.prompt_tokens


async def test_the_same_text_gives_the_same_vector_every_time(env: Env, vectors: str) -> None:
    client = env.openai()
    one = await client.embeddings.create(model=vectors, input="hello")
    two = await client.embeddings.create(model=vectors, input="hello")
    assert one.data[0].embedding == two.data[0].embedding


async def test_base64_is_the_same_floats_little_endian(env: Env, vectors: str) -> None:
    client = env.http()
    plain = await client.post("/v1/embeddings", json={"model": vectors, "input": "x y"})
    packed = await client.post(
        "/v1/embeddings", json={"model": vectors, "input": "x y", "encoding_format": "base64"}
    )
    floats = plain.json()["data"][0]["embedding"]
    raw = base64.b64decode(packed.json()["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert decoded == pytest.approx(floats, abs=1e-6)


async def test_the_sdk_default_base64_decodes_to_the_vectors(env: Env, vectors: str) -> None:
    # The SDK asks for base64 unless told otherwise, and decodes it itself.
    client = env.openai()
    default = await client.embeddings.create(model=vectors, input="abc")
    floats = await client.embeddings.create(model=vectors, input="abc", encoding_format="float")
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)


async def test_dimensions_shortens_and_renormalises_on_a_backend_that_can(
    env: Env, vectors: str
) -> None:
    client = env.openai()
    full = (await client.embeddings.create(model=vectors, input="abc")).data[0].embedding
    short = (
        (await client.embeddings.create(model=vectors, input="abc", dimensions=3)).data[0].embedding
    )
    assert len(short) == 3
    assert math.fsum(x * x for x in short) == pytest.approx(1.0)
    assert cosine(short, full[:3]) == pytest.approx(1.0)


async def test_token_id_inputs_embed_like_their_text(env: Env, vectors: str) -> None:
    client = env.http()
    ids = (await client.post("/tokenize", json={"model": vectors, "prompt": "red fox"})).json()
    by_text = await client.post("/v1/embeddings", json={"model": vectors, "input": "red fox"})
    by_ids = await client.post(
        "/v1/embeddings", json={"model": vectors, "input": [ids["tokens"], ids["tokens"]]}
    )
    assert by_ids.status_code == 200, by_ids.text
    vector = by_text.json()["data"][0]["embedding"]
    assert [item["embedding"] for item in by_ids.json()["data"]] == [vector, vector]


async def test_one_event_per_embeddings_request(env: Env, vectors: str) -> None:
    await env.openai().embeddings.create(model=vectors, input=["a b", "c"])
    [event] = env.finished.events
    assert event.endpoint == "embeddings"
    assert (event.status, event.prompt_tokens, event.completion_tokens) == ("ok", 3, 0)
    assert (event.model, event.version) == ("embedder", 1)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": []}, "input"),
        ({"input": ""}, "input"),
        ({"input": ["a", ""]}, "input"),
        ({"input": [[]]}, "input"),
        ({"input": [1, -1]}, "input"),
        ({"input": 5}, "input"),
        ({"input": ["x"] * 2049}, "input"),
        ({"input": "a", "encoding_format": "hex"}, "encoding_format"),
        ({"input": "a", "dimensions": 0}, "dimensions"),
        ({"input": "a", "dimensions": 9}, "dimensions"),  # more than the model has
        ({"input": [99_999]}, "input"),  # not in the vocabulary
        ({}, "input"),
    ],
)
async def test_bad_embeddings_requests_are_400(
    env: Env, vectors: str, body: dict[str, Any], param: str
) -> None:
    response = await env.http().post("/v1/embeddings", json={"model": vectors, **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


async def test_an_unknown_deployment_is_model_not_found(env: Env, vectors: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await env.openai().embeddings.create(model="nope", input="x")
    assert caught.value.code == "model_not_found"


async def test_embeddings_need_a_key(env: Env, vectors: str) -> None:
    client = env.http()
    del client.headers["Authorization"]
    response = await client.post("/v1/embeddings", json={"model": vectors, "input": "x"})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


async def test_a_cached_deployment_still_embeds(env: Env) -> None:
    from modelcycle.deploy.schemas import CachePolicy

    env.deploy("cached", (env.version("embedder"), 100), cache=CachePolicy(ttl_s=60))
    client = env.openai()
    first = await client.embeddings.create(model="cached", input="x")
    second = await client.embeddings.create(model="cached", input="x")
    assert first.data[0].embedding == second.data[0].embedding
