"""Turning a chat request into a plain-text prompt for base (non-chat) models.

The rule, for a version whose params say ``prompt_format: "completion"``:

- the text of the **last user message** replaces ``{prompt}`` in
  ``prompt_template`` (``{system}``, when present, gets the system messages
  joined by blank lines); earlier turns are not rendered, because a base model
  has no chat format to put them in;
- the template's ``stop`` sequences always apply, together with any ``stop``
  the request gives, because they end the answer where the frame's next
  question would begin;
- whitespace the model puts between the frame (``Answer:``) and the answer is
  dropped, so the reply reads like a chat answer (``Rome.``, not `` Rome.``).

Any other version is served by the engine's own chat template.

Two version params put a prompt in front of every caller's request (a
``prompt-search`` tuning job registers its winner with them):

- ``system_prompt``: used when the request has no system (or developer) message;
- ``few_shot``: example messages (``[{"role": "user"|"assistant", "content": ...}]``)
  placed after the request's leading system messages, before its conversation.
  A ``completion`` version renders each user/assistant pair as a filled-in frame
  (the template's line holding ``{prompt}`` onwards, the answer after it) just
  before the request's own frame.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from modelcycle.backends.base import GenerationParams, Message, as_stop
from modelcycle.errors import InvalidInput

COMPLETION_FORMAT = "completion"
_PLACEHOLDER = re.compile(r"\{(system|prompt)\}")
_SYSTEM_ROLES = ("system", "developer")
_EXAMPLE_ROLES = ("user", "assistant")
MAX_FEW_SHOT_MESSAGES = 64
T = TypeVar("T")


def uses_template(params: Mapping[str, Any]) -> bool:
    """Whether chat requests to this version are rendered into ``prompt_template``."""
    return params.get("prompt_format") == COMPLETION_FORMAT


def last_user_text(messages: Sequence[Message]) -> str:
    """The content of the last user message; ``InvalidInput`` when there is none."""
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    raise InvalidInput("messages must contain at least one user message", param="messages")


def few_shot_messages(version: Mapping[str, Any]) -> tuple[Message, ...]:
    """The version's ``few_shot`` examples as messages (empty when it has none)."""
    examples = version.get("few_shot")
    if not isinstance(examples, list):
        return ()
    return tuple(
        Message(str(item.get("role")), str(item.get("content") or ""))
        for item in examples
        if isinstance(item, Mapping)
    )


def with_prompt_params(
    messages: Sequence[Message], version: Mapping[str, Any]
) -> tuple[Message, ...]:
    """The request's messages with the version's ``system_prompt`` and ``few_shot`` applied.

    Applying a second set of params to the result stacks: its examples go before
    the first set's, and its system prompt only where the first set gave none.
    """
    return tuple(apply_prompt_params(messages, [m.role for m in messages], version, _same))


def apply_prompt_params(
    items: Sequence[T],
    roles: Sequence[str],
    version: Mapping[str, Any],
    make: Callable[[Message], T],
) -> list[T]:
    """:func:`with_prompt_params` for any message shape (``roles[i]`` is ``items[i]``'s role)."""
    system = version.get("system_prompt")
    examples = few_shot_messages(version)
    if not (isinstance(system, str) and system) and not examples:
        return list(items)
    lead = 0
    while lead < len(roles) and roles[lead] in _SYSTEM_ROLES:
        lead += 1
    head = list(items[:lead])
    if isinstance(system, str) and system and not any(r in _SYSTEM_ROLES for r in roles):
        head = [make(Message("system", system))]
    return [*head, *(make(example) for example in examples), *items[lead:]]


def _same(message: Message) -> Message:
    return message


def prompt_param_problems(params: Mapping[str, Any]) -> list[str]:
    """What is wrong with a version's ``system_prompt`` and ``few_shot`` (one line each)."""
    problems: list[str] = []
    system = params.get("system_prompt")
    if system is not None and not isinstance(system, str):
        problems.append("params.system_prompt must be a string")
    examples = params.get("few_shot")
    if examples is None:
        return problems
    if not isinstance(examples, list) or len(examples) > MAX_FEW_SHOT_MESSAGES:
        problems.append(
            f"params.few_shot must be a list of at most {MAX_FEW_SHOT_MESSAGES} messages"
        )
        return problems
    for index, item in enumerate(examples):
        ok = (
            isinstance(item, Mapping)
            and item.get("role") in _EXAMPLE_ROLES
            and isinstance(item.get("content"), str)
        )
        if not ok:
            problems.append(
                f'params.few_shot[{index}] must be {{"role": "user" or "assistant", '
                '"content": "..."}'
            )
    return problems


def _fill(template: str, values: Mapping[str, str]) -> str:
    # One pass, so braces inside the user's text are never treated as placeholders.
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def _example_frames(template: str, examples: Sequence[Message]) -> tuple[str, str]:
    """(template before the frame, the filled-in example frames) for a completion version."""
    at = template.find("{prompt}")
    if not examples or at < 0:
        return template, ""
    start = template.rfind("\n", 0, at) + 1
    head, frame = template[:start], template[start:]
    rendered = []
    for question, answer in itertools.pairwise(examples):
        if question.role == "user" and answer.role == "assistant":
            text = _fill(frame, {"system": "", "prompt": question.content})
            space = "" if not text or text[-1].isspace() else " "
            rendered.append(f"{text}{space}{answer.content}\n\n")
    return head, "".join(rendered)


def render_chat(
    messages: Sequence[Message], version: Mapping[str, Any], request: GenerationParams
) -> tuple[str, GenerationParams]:
    """The prompt and the stop sequences for a chat request to a ``completion`` version."""
    template = str(version.get("prompt_template") or "{prompt}")
    system = "\n\n".join(m.content for m in messages if m.role in _SYSTEM_ROLES)
    default_system = version.get("system_prompt")
    if not system and isinstance(default_system, str):
        system = default_system
    values = {"system": system, "prompt": last_user_text(messages)}
    head, examples = _example_frames(template, few_shot_messages(version))
    prompt = _fill(head, values) + examples + _fill(template[len(head) :], values)
    frame_stops = as_stop(version.get("stop")) or ()
    extra = request.stop or ()
    stops = tuple(dict.fromkeys((*frame_stops, *extra))) or None
    return prompt, replace(request, stop=stops)
