"""How version params and request params combine, and how chats become base-model prompts."""

from __future__ import annotations

from modelcycle.backends import GenerationParams, Message, merge_params
from modelcycle.backends.prompting import render_chat, uses_template
from modelcycle.services import DEFAULT_MODEL_PARAMS

VERSION = {
    "prompt_format": "completion",
    "prompt_template": "{system}\nQ: {prompt}\nA:",
    "stop": ["\nQ:"],
    "temperature": 0.2,
    "max_tokens": 64,
}


def test_request_parameters_override_version_defaults() -> None:
    merged = merge_params(VERSION, GenerationParams(temperature=0.9, stop=("x",)))
    assert merged == GenerationParams(max_tokens=64, temperature=0.9, stop=("x",))
    assert merge_params({}, GenerationParams()) == GenerationParams()
    assert merge_params({"stop": "END", "seed": 7}, GenerationParams()).stop == ("END",)


def test_the_last_user_message_fills_the_template_and_frame_stops_always_apply() -> None:
    messages = [
        Message("system", "Be brief."),
        Message("user", "first question"),
        Message("assistant", "first answer"),
        Message("user", "What is {prompt}?"),
    ]
    prompt, params = render_chat(messages, VERSION, GenerationParams(stop=(".",)))
    assert prompt == "Be brief.\nQ: What is {prompt}?\nA:"  # braces in user text stay as typed
    assert params.stop == ("\nQ:", ".")
    assert uses_template(VERSION)
    assert not uses_template({"temperature": 1})


def test_the_embedded_default_renders_a_short_question_frame() -> None:
    prompt, params = render_chat(
        [Message("user", "What is the capital of Italy?")], DEFAULT_MODEL_PARAMS, GenerationParams()
    )
    assert prompt.endswith("Question: What is the capital of Italy?\nAnswer:")
    assert params.stop == ("\nQuestion:", "\n\n")
