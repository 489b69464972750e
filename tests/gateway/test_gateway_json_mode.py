"""``response_format``: JSON mode and JSON schemas answer JSON that parses (mock backend)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.harness import Env

QUESTION = [{"role": "user", "content": "What is the capital of Italy?"}]
CITY = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "population": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "capital": {"type": "boolean"},
        "kind": {"enum": ["city", "town"]},
    },
    "required": ["city", "population", "tags", "capital", "kind"],
}


@pytest.fixture
def bot(env: Env) -> str:
    env.deploy("bot", (env.version("bot", "mock://script?reply=Rome"), 100))
    return "bot"


async def test_json_object_mode_answers_a_json_object(env: Env, bot: str) -> None:
    answer = await env.openai().chat.completions.create(
        model=bot, messages=QUESTION, response_format={"type": "json_object"}
    )
    assert json.loads(answer.choices[0].message.content or "") == {"text": "Rome"}


async def test_a_json_schema_is_followed(env: Env, bot: str) -> None:
    answer = await env.openai().chat.completions.create(
        model=bot,
        messages=QUESTION,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": CITY, "strict": True},
        },
    )
    parsed = json.loads(answer.choices[0].message.content or "")
    assert parsed == {
        "city": "Rome",
        "population": 0,
        "tags": ["Rome"],
        "capital": False,
        "kind": "city",
    }


async def test_json_mode_on_completions_and_streams(env: Env, bot: str) -> None:
    client = env.openai()
    stream = await client.completions.create(
        model=bot,
        prompt="Italy:",
        stream=True,
        extra_body={"response_format": {"type": "json_object"}},
    )
    text = "".join([c.choices[0].text async for c in stream if c.choices])
    assert json.loads(text) == {"text": "Rome"}


async def test_text_format_is_plain_text(env: Env, bot: str) -> None:
    answer = await env.openai().chat.completions.create(
        model=bot, messages=QUESTION, response_format={"type": "text"}
    )
    assert answer.choices[0].message.content == "Rome"


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "xml"},
        {"type": "json_schema"},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": "not an object"}},
        {"type": "json_object", "schema": []},
        "json",
    ],
)
async def test_a_bad_response_format_is_a_400(env: Env, bot: str, response_format: Any) -> None:
    response = await env.http().post(
        "/v1/chat/completions",
        json={"model": bot, "messages": QUESTION, "response_format": response_format},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "response_format"
