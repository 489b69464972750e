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
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from modelcycle.backends.base import GenerationParams, Message, as_stop
from modelcycle.errors import InvalidInput

COMPLETION_FORMAT = "completion"
_PLACEHOLDER = re.compile(r"\{(system|prompt)\}")


def uses_template(params: Mapping[str, Any]) -> bool:
    """Whether chat requests to this version are rendered into ``prompt_template``."""
    return params.get("prompt_format") == COMPLETION_FORMAT


def last_user_text(messages: Sequence[Message]) -> str:
    """The content of the last user message; ``InvalidInput`` when there is none."""
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    raise InvalidInput("messages must contain at least one user message", param="messages")


def render_chat(
    messages: Sequence[Message], version: Mapping[str, Any], request: GenerationParams
) -> tuple[str, GenerationParams]:
    """The prompt and the stop sequences for a chat request to a ``completion`` version."""
    template = str(version.get("prompt_template") or "{prompt}")
    system = "\n\n".join(m.content for m in messages if m.role in ("system", "developer"))
    values = {"system": system, "prompt": last_user_text(messages)}
    # One pass, so braces inside the user's text are never treated as placeholders.
    prompt = _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)
    frame_stops = as_stop(version.get("stop")) or ()
    extra = request.stop or ()
    stops = tuple(dict.fromkeys((*frame_stops, *extra))) or None
    return prompt, replace(request, stop=stops)
