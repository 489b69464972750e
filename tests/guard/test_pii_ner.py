"""``PERSON`` through a local token-classification model: loaded from disk only, spans exact.

The model is built here, tiny and deterministic: no encoder layers, word
embeddings pointing one way for first names, another for surnames, the
opposite way for everything else, and a classifier reading those directions as
B-PER, I-PER and O. It exercises the real loading and aggregation path without
any download.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelcycle.guard.detectors.pii import make_pii

FIRST_NAMES = ("ana", "maria", "john")
SURNAMES = ("lopez", "garcia", "smith")
OTHER_WORDS = ("my", "name", "is", "and", "i", "live", "in", "madrid", "me", "llamo", "y", ".", ",")


def _tiny_ner_model(directory: Path) -> Path:
    torch: Any = pytest.importorskip("torch")
    transformers: Any = pytest.importorskip("transformers")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *FIRST_NAMES, *SURNAMES, *OTHER_WORDS]
    tokenizers: Any = pytest.importorskip("tokenizers")
    wordpiece = tokenizers.Tokenizer(
        tokenizers.models.WordPiece(vocab={w: i for i, w in enumerate(vocab)}, unk_token="[UNK]")
    )
    wordpiece.normalizer = tokenizers.normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    wordpiece.post_processor = tokenizers.processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=wordpiece,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    labels = {0: "O", 1: "B-PER", 2: "I-PER"}
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=8,
        num_hidden_layers=0,
        num_attention_heads=1,
        intermediate_size=8,
        max_position_embeddings=64,
        num_labels=3,
        id2label=labels,
        label2id={label: index for index, label in labels.items()},
    )
    model = transformers.BertForTokenClassification(config)
    first = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    last = torch.tensor([1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0])  # orthogonal to first
    with torch.no_grad():
        embeddings = model.bert.embeddings
        embeddings.word_embeddings.weight[:] = -first
        for word in FIRST_NAMES:
            embeddings.word_embeddings.weight[vocab.index(word)] = first
        for word in SURNAMES:
            embeddings.word_embeddings.weight[vocab.index(word)] = last
        embeddings.position_embeddings.weight.zero_()
        embeddings.token_type_embeddings.weight.zero_()
        model.classifier.weight[0] = -5 * first
        model.classifier.weight[1] = 5 * first
        model.classifier.weight[2] = 5 * last
        model.classifier.bias.zero_()
    tokenizer.save_pretrained(str(directory))
    model.save_pretrained(str(directory))
    return directory


def test_person_names_come_from_the_local_model(tmp_path: Path) -> None:
    detector = make_pii({"ner_model": str(_tiny_ner_model(tmp_path))})
    text = "My name is Ana Lopez and I live in Madrid, me llamo John Smith."
    people = [(text[f.start : f.end], f.score) for f in detector.detect(text) if f.type == "PERSON"]
    assert [name for name, _ in people] == ["Ana Lopez", "John Smith"]
    assert all(score > 0.9 for _, score in people)


def test_person_findings_sit_with_the_rule_based_ones(tmp_path: Path) -> None:
    detector = make_pii({"ner_model": str(_tiny_ner_model(tmp_path))})
    text = "maria garcia, 612 345 678"
    kinds = [(f.type, text[f.start : f.end]) for f in detector.detect(text) if f.score >= 0.5]
    assert kinds == [("PERSON", "maria garcia"), ("PHONE_NUMBER", "612 345 678")]
