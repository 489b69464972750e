"""Loading a model for kind ``transformers``: a checkpoint directory or a GGUF file, plus a LoRA.

Everything here runs on the model's worker thread and imports torch,
transformers and peft lazily, failing with the pip command to run.

A GGUF file is dequantised by transformers, which takes about a minute for
Gemma 3 270M; the result is saved once as a safetensors checkpoint under the
cache directory (``MODELCYCLE_HOME/cache/transformers``), keyed by the file's
path, size and modification time, the dtype and the transformers version, so
later loads take a second.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import shutil
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelcycle.errors import InvalidInput, MissingExtra, UpstreamError

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")
DEFAULT_CONTEXT = 2048


@dataclass(frozen=True, slots=True)
class ModelKey:
    """What identifies one loaded model in a process: the weights, the adapter, the dtype."""

    source: str
    adapter: str | None
    dtype: str


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model ready to generate, and what the step loop needs to know about it."""

    model: Any
    tokenizer: Any
    eos_ids: frozenset[int]
    pad_id: int
    bos_id: int | None
    context_length: int
    cache_arg: str
    """Name of the forward argument taking the KV cache (``cache`` in transformers 5.2x)."""
    logits_arg: str | None
    """Name of the forward argument that limits logits to the last position, if any."""

    def new_cache(self) -> Any:
        """An empty KV cache for one batch."""
        from transformers import DynamicCache

        try:
            return DynamicCache(config=self.model.config)
        except TypeError:  # transformers before the config argument
            return DynamicCache()


def check_dtype(value: Any) -> str:
    """The ``dtype`` version param, validated (``float32`` when unset)."""
    dtype = "float32" if value is None else str(value)
    if dtype not in DTYPES:
        raise InvalidInput(
            f"dtype must be one of {', '.join(DTYPES)}, not '{dtype}'", param="dtype"
        )
    return dtype


def load(key: ModelKey, cache_dir: Path | None) -> LoadedModel:
    """Load the model, tokenizer and adapter named by ``key``; errors name the path."""
    torch, transformers = _imports()
    source = Path(key.source).expanduser()
    gguf = source.suffix.lower() == ".gguf"
    if gguf and not source.is_file():
        raise UpstreamError(f"cannot load transformers model {key.source}: no such GGUF file")
    if not gguf and not source.is_dir():
        raise UpstreamError(
            f"cannot load transformers model {key.source}: no such directory "
            "(give a Hugging Face checkpoint directory or a .gguf file)"
        )
    dtype = getattr(torch, key.dtype)
    try:
        if gguf:
            model, tokenizer = _from_gguf(transformers, source, dtype, key.dtype, cache_dir)
        else:
            model, tokenizer = _from_directory(transformers, source, dtype)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise UpstreamError(f"cannot load transformers model {key.source}: {exc}") from exc
    if key.adapter:
        model, tokenizer = _with_adapter(transformers, model, tokenizer, key.adapter)
    model.eval()
    return _describe(model, tokenizer)


def _imports() -> tuple[Any, Any]:
    try:
        import torch
    except ImportError as exc:
        raise MissingExtra("torch", "hf") from exc
    try:
        import transformers
    except ImportError as exc:
        raise MissingExtra("transformers", "hf") from exc
    return torch, transformers


def _from_directory(transformers: Any, path: Path, dtype: Any) -> tuple[Any, Any]:
    # local_files_only: a missing file must fail here, never turn into a hub download.
    model = transformers.AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype, local_files_only=True
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    return model, tokenizer


def _from_gguf(
    transformers: Any, path: Path, dtype: Any, dtype_name: str, cache_dir: Path | None
) -> tuple[Any, Any]:
    cached = _gguf_cache_path(transformers, path, dtype_name, cache_dir)
    if cached is not None and (cached / "config.json").is_file():
        return _from_directory(transformers, cached, dtype)
    log.info("dequantising %s with transformers (once; cached as %s)", path, cached)
    kwargs = {"gguf_file": path.name, "local_files_only": True}
    tokenizer = transformers.AutoTokenizer.from_pretrained(path.parent, **kwargs)
    model = transformers.AutoModelForCausalLM.from_pretrained(path.parent, dtype=dtype, **kwargs)
    if cached is not None:
        _save_dequantised(model, tokenizer, cached)
    return model, tokenizer


def _gguf_cache_path(
    transformers: Any, path: Path, dtype_name: str, cache_dir: Path | None
) -> Path | None:
    if cache_dir is None:
        return None
    stat = path.stat()
    identity = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{dtype_name}|"
    identity += str(transformers.__version__)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return cache_dir / "gguf" / f"{path.stem}-{digest}"


def _save_dequantised(model: Any, tokenizer: Any, target: Path) -> None:
    """Save the dequantised weights as a plain checkpoint, atomically (rename into place)."""
    # The weights are plain tensors now; only the GGUF marker makes save_pretrained refuse.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, target)
    except OSError as exc:  # a full disk or a concurrent writer: serve anyway, uncached
        log.warning("could not cache the dequantised model at %s: %s", target, exc)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _with_adapter(transformers: Any, model: Any, tokenizer: Any, adapter: str) -> tuple[Any, Any]:
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise MissingExtra("peft", "hf") from exc
    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise UpstreamError(
            f"cannot load LoRA adapter {adapter}: no adapter_config.json in that directory"
        )
    try:
        with warnings.catch_warnings():
            # peft reads an attribute transformers 5 deprecates: noise, not the user's problem.
            warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
            adapted = PeftModel.from_pretrained(model, path, local_files_only=True)
        # Merged into the weights: the same outputs as the unmerged adapter, at base speed.
        model = adapted.merge_and_unload()
        # An adapter trained with its own tokenizer (added tokens, a chat template) ships it.
        if (path / "tokenizer_config.json").is_file():
            tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise UpstreamError(f"cannot load LoRA adapter {adapter}: {exc}") from exc
    return model, tokenizer


def _describe(model: Any, tokenizer: Any) -> LoadedModel:
    eos: set[int] = set()
    for candidate in (model.generation_config.eos_token_id, tokenizer.eos_token_id):
        if isinstance(candidate, int):
            eos.add(candidate)
        elif isinstance(candidate, list | tuple):
            eos.update(int(token) for token in candidate)
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = next(iter(sorted(eos)), 0)  # any id: padded positions are masked out
    parameters = inspect.signature(model.forward).parameters
    logits_arg = next(
        (name for name in ("logits_to_keep", "num_logits_to_keep") if name in parameters), None
    )
    context = getattr(model.config, "max_position_embeddings", None) or DEFAULT_CONTEXT
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        eos_ids=frozenset(eos),
        pad_id=int(pad),
        bos_id=tokenizer.bos_token_id,
        context_length=int(context),
        cache_arg="cache" if "cache" in parameters else "past_key_values",
        logits_arg=logits_arg,
    )
