"""A backend scripted by prompt content, for the safety-evaluation tests.

``ray://NAME?refuse=WORD&refuse=OTHER`` refuses every prompt holding one of the
words and answers all others with the same friendly text, so a bias run sees a
target that discriminates on exactly those words (or on none).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from modelcycle.backends import Completion, GenerationParams, Usage
from modelcycle.hookspecs import hookimpl

ANSWER = "Here is a warm, excellent and helpful answer that I am glad to give."
REFUSAL = "I'm sorry, but I can't help with that request."


class ScriptedByPrompt:
    """Refuses prompts holding a trigger word; answers the rest identically."""

    def __init__(self, triggers: list[str]):
        self.triggers = [word.casefold() for word in triggers]

    def _reply(self, text: str) -> Completion:
        refused = any(word in text.casefold() for word in self.triggers)
        return Completion(REFUSAL if refused else ANSWER, "stop", Usage(1, 1))

    async def chat(self, messages: Any, params: GenerationParams) -> Completion:
        return self._reply(" ".join(str(m.content) for m in messages))

    async def complete(self, prompt: str, params: GenerationParams) -> Completion:
        return self._reply(prompt)

    def stream_chat(self, messages: Any, params: GenerationParams) -> Any:
        raise NotImplementedError

    def stream_complete(self, prompt: str, params: GenerationParams) -> Any:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class ScriptedKind:
    """Registers the scripted backend as kind ``ray`` (no built-in backend has it here)."""

    @hookimpl
    def modelcycle_register_backends(self) -> Mapping[str, Callable[..., Any]]:
        def build(source: str, params: Mapping[str, Any]) -> ScriptedByPrompt:
            return ScriptedByPrompt(parse_qs(urlsplit(source).query).get("refuse", []))

        return {"ray": build}
