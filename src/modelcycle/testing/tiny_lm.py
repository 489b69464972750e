"""Tiny causal language models the tests build themselves: nothing is downloaded.

A word-level tokenizer (``<pad>``, ``<s>``, ``</s>``, ``<unk>`` then the given
words, split on whitespace) and a small Llama with random, seeded weights.
Both save as a normal Hugging Face checkpoint directory, which every loader
in modelcycle (serving, tuning) accepts. torch and transformers are imported
lazily: importing this module needs neither.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)


def word_tokenizer(words: Iterable[str], *, chat_template: str | None = None) -> Any:
    """A ``PreTrainedTokenizerFast`` over the special tokens then ``words`` (deduplicated)."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for word in words:
        vocab.setdefault(word, len(vocab))
    pad, bos, eos, unk = SPECIAL_TOKENS
    core = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=core,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        unk_token=unk,
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def tiny_llama(
    vocab_size: int,
    *,
    hidden_size: int = 64,
    intermediate_size: int = 128,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    max_positions: int = 128,
    seed: int = 7,
    initializer_range: float = 0.02,
) -> Any:
    """A ``LlamaForCausalLM`` with random weights drawn from ``seed``.

    A larger ``initializer_range`` (0.3, say) gives the frozen output head room
    for confident predictions, which a LoRA on a tiny random model needs to learn.
    """
    import torch
    import transformers

    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
        initializer_range=initializer_range,
    )
    return transformers.LlamaForCausalLM(config)


def save_tiny_lm(
    directory: Path,
    words: Iterable[str],
    *,
    chat_template: str | None = None,
    **model_options: Any,
) -> Path:
    """Build a word tokenizer and a tiny Llama over ``words`` and save both to ``directory``.

    ``model_options`` go to :func:`tiny_llama` (hidden_size, layers, seed, ...).
    """
    tokenizer = word_tokenizer(words, chat_template=chat_template)
    model = tiny_llama(len(tokenizer), **model_options)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
