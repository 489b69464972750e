"""Kind ``transformers``: Hugging Face checkpoints and GGUF files, with LoRA adapters and batching.

torch, transformers and peft are imported on first use (``pip install
'modelcycle[hf]'``); importing this package costs nothing.
"""

from modelcycle.backends.hf.backend import (
    Models,
    TransformersBackend,
    check_params,
    check_version,
    make_factory,
)

__all__ = ["Models", "TransformersBackend", "check_params", "check_version", "make_factory"]
