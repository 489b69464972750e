"""Optional protocols a backend may implement beyond ``Backend``; the gateway checks them.

``Backend`` is what every engine must do: answer chat and completion requests
with text. Some engines can do more, and say so by implementing these
protocols (checked with ``isinstance``, so a backend that implements none keeps
type-checking and working):

- ``Capable.supports(feature)``: which request features the engine honours
  (``FEATURES``). The gateway refuses a request that needs a feature the chosen
  backend lacks with a 400 naming the backend kind, rather than ignoring it.
  A backend that is not ``Capable`` supports none of them, except
  ``response_format``, which reaches it in ``GenerationParams.passthrough`` for
  a remote upstream to enforce.
- ``Tokenizing``: the engine's own tokenizer, and prompts given as token ids
  (``/tokenize``, ``/detokenize``, ``/tokenizer_info``; token-id prompts of
  ``/v1/completions``).
- ``Embedder``: ``/v1/embeddings``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

from modelcycle.backends.base import Chunk, Completion, GenerationParams, Message

LOGPROBS: Final = "logprobs"
"""Log-probabilities of generated tokens (``GenerationParams.logprobs``)."""
ECHO: Final = "echo"
"""Scored prompt tokens on completions (``GenerationParams.echo`` with ``logprobs``)."""
RESPONSE_FORMAT: Final = "response_format"
"""JSON mode and JSON schemas (``GenerationParams.response_format``)."""
DIMENSIONS: Final = "dimensions"
"""Shortened embeddings (``dimensions`` of ``/v1/embeddings``)."""
FEATURES: Final = frozenset({LOGPROBS, ECHO, RESPONSE_FORMAT, DIMENSIONS})


@runtime_checkable
class Capable(Protocol):
    """A backend that says which optional request features it honours."""

    def supports(self, feature: str) -> bool:
        """Whether requests using ``feature`` (one of ``FEATURES``) are served as asked."""
        ...


@dataclass(frozen=True, slots=True)
class TokenizerInfo:
    """What a client needs to reproduce the engine's tokenization (vLLM's field names)."""

    tokenizer_class: str
    max_model_len: int
    """The context window, prompt and answer together, in tokens."""
    vocab_size: int
    bos_token: str | None = None
    eos_token: str | None = None
    pad_token: str | None = None
    add_bos_token: bool = False
    """Whether text prompts get ``bos_token`` in front (``add_special_tokens``)."""
    add_eos_token: bool = False
    chat_template: str | None = None


@runtime_checkable
class Tokenizing(Protocol):
    """A backend with its own tokenizer, which also takes prompts as token ids."""

    async def tokenize(self, text: str, *, add_special: bool) -> list[int]:
        """The token ids of ``text`` (with the model's BOS when ``add_special``)."""
        ...

    async def tokenize_chat(self, messages: Sequence[Message]) -> list[int]:
        """The token ids of the prompt a chat request with ``messages`` would evaluate."""
        ...

    async def detokenize(self, tokens: Sequence[int]) -> str:
        """The text of ``tokens``; ``InvalidInput`` for an id outside the vocabulary."""
        ...

    async def tokenizer_info(self) -> TokenizerInfo:
        """The tokenizer's configuration."""
        ...

    async def complete_tokens(self, tokens: Sequence[int], params: GenerationParams) -> Completion:
        """Continue a prompt given as token ids (evaluated as given: no BOS is added)."""
        ...

    def stream_complete_tokens(
        self, tokens: Sequence[int], params: GenerationParams
    ) -> AsyncIterator[Chunk]:
        """Continue a prompt given as token ids, piece by piece."""
        ...


@dataclass(frozen=True, slots=True)
class Embeddings:
    """One vector per input, in input order, and the tokens read."""

    vectors: list[list[float]]
    prompt_tokens: int


@runtime_checkable
class Embedder(Protocol):
    """A backend that turns text (or token ids) into vectors."""

    async def embed(
        self, inputs: Sequence[str | Sequence[int]], *, dimensions: int | None
    ) -> Embeddings:
        """One vector per input; ``dimensions`` shortens them (when ``supports`` says so)."""
        ...
