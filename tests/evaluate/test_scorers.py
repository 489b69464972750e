"""The built-in scorers: exact values on hand-made samples, option checks, plugins."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelcycle.errors import InvalidInput, MissingExtra
from modelcycle.evaluate.scorers import (
    BuiltinScorers,
    Score,
    Scorer,
    ScorerRegistry,
    ScoringInput,
    score_batch,
)
from modelcycle.evaluate.scorers.bleu import tokenize_13a
from modelcycle.evaluate.scorers.overlap import lcs_length, tokens
from modelcycle.evaluate.scorers.semantic import EmbeddingOptions, EmbeddingSimilarity
from modelcycle.hookspecs import hookimpl
from modelcycle.plugins import build_plugin_manager


@pytest.fixture(scope="module")
def registry() -> ScorerRegistry:
    return ScorerRegistry(BuiltinScorers().modelcycle_register_scorers())


def value(
    registry: ScorerRegistry,
    name: str,
    output: str,
    expected: str | None = None,
    **options: Any,
) -> float | None:
    return registry.build(name, options).score(ScoringInput(output, expected)).value


# --- string scorers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected", "options", "want"),
    [
        ("Paris", "Paris", {}, 1.0),
        ("Paris\n", " Paris", {}, 1.0),  # stripped by default
        ("Paris\n", "Paris", {"strip": False}, 0.0),
        ("paris", "Paris", {}, 0.0),
        ("paris", "Paris", {"ignore_case": True}, 1.0),
        ("New   York", "New York", {}, 0.0),
        ("New \n York", "New York", {"normalize_whitespace": True}, 1.0),
        ("Paris.", "Paris", {}, 0.0),
        ("¡Paris!", "Paris", {"ignore_punctuation": True}, 1.0),
        ("São Paulo", "sao paulo", {"ignore_case": True}, 0.0),  # accents are not folded
    ],
)
def test_exact_match(
    registry: ScorerRegistry, output: str, expected: str, options: dict[str, Any], want: float
) -> None:
    assert value(registry, "exact_match", output, expected, **options) == want


@pytest.mark.parametrize(
    "name", ["exact_match", "contains", "rouge_l", "bleu", "embedding_similarity"]
)
def test_a_sample_without_reference_gets_an_error_not_a_score(
    registry: ScorerRegistry, name: str
) -> None:
    if name == "bleu":
        pytest.importorskip("sacrebleu")
    if name == "embedding_similarity":
        pytest.importorskip("sentence_transformers")
    scorer = registry.build(name)
    assert scorer.needs_reference
    score = scorer.score_many([ScoringInput("an answer")])[0]
    assert score.value is None
    assert score.error == f"{name}: the sample has no expected answer to compare with"


def test_contains(registry: ScorerRegistry) -> None:
    assert value(registry, "contains", "The capital is Paris.", "Paris") == 1.0
    assert value(registry, "contains", "The capital is paris.", "Paris") == 0.0
    assert value(registry, "contains", "The capital is paris.", "Paris", ignore_case=True) == 1.0
    listed = registry.build("contains", {"any": ["Paris", "París"], "all": ["capital"]})
    assert not listed.needs_reference
    assert listed.score(ScoringInput("París is the capital")).value == 1.0
    missing = listed.score(ScoringInput("París is nice"))
    assert (missing.value, missing.details) == (0.0, {"missing": ["capital"]})
    assert listed.score(ScoringInput("Lyon is a capital")).value == 0.0


def test_contains_refuses_an_empty_needle(registry: ScorerRegistry) -> None:
    with pytest.raises(InvalidInput, match="empty string is contained in every output"):
        registry.build("contains", {"any": [""]})


def test_regex(registry: ScorerRegistry) -> None:
    assert value(registry, "regex", "call 555-1234 now", pattern=r"\d{3}-\d{4}") == 1.0
    assert value(registry, "regex", "no number", pattern=r"\d{3}-\d{4}") == 0.0
    full = {"pattern": r"\d{3}-\d{4}", "mode": "fullmatch"}
    assert value(registry, "regex", " 555-1234\n", **full) == 1.0
    assert value(registry, "regex", "call 555-1234", **full) == 0.0
    assert value(registry, "regex", "YES", pattern="^yes$", flags=["ignorecase"]) == 1.0
    assert value(registry, "regex", "YES", pattern="^yes$") == 0.0


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        (r"(a+)+$", "quantifier nested inside another quantifier"),
        (r"^(\w+\s?)*$", "quantifier nested inside another quantifier"),
        (r"(a?){20}", "quantifier nested inside another quantifier"),
        (r"(a|ab)*c", "alternation under a quantifier"),
        (r"(\d\d|\w\w)+!", "alternation under a quantifier"),
        (r"(x+x+)+y", "quantifier nested inside another quantifier"),
        (r"(a)\1", "backreference"),
        (r"(?P<q>['\"]).*(?P=q)", "backreference"),
    ],
)
def test_regex_refuses_patterns_that_backtrack_catastrophically(
    registry: ScorerRegistry, pattern: str, problem: str
) -> None:
    with pytest.raises(InvalidInput, match=problem):
        registry.build("regex", {"pattern": pattern})


@pytest.mark.parametrize(
    "pattern",
    [
        r"(\w|\d)+!",
        r"(cat|dog)+",
        r"(?:ab)+c",
        r"(a{3})*",
        r"(a+)++",
        r"(?>a+)+b",
        r"^\s*\{.*\}\s*$",
        r"[ab]+",
    ],
)
def test_regex_accepts_safe_patterns(registry: ScorerRegistry, pattern: str) -> None:
    assert registry.build("regex", {"pattern": pattern}).kind == "binary"


def test_regex_option_errors(registry: ScorerRegistry) -> None:
    with pytest.raises(InvalidInput, match="option 'pattern': Field required"):
        registry.build("regex", {})
    with pytest.raises(InvalidInput, match="invalid regular expression"):
        registry.build("regex", {"pattern": "(unclosed"})
    with pytest.raises(InvalidInput, match=r"option 'flags\.0'"):
        registry.build("regex", {"pattern": "x", "flags": ["verbose"]})


# --- JSON ----------------------------------------------------------------------------------


def test_json_valid(registry: ScorerRegistry) -> None:
    assert value(registry, "json_valid", '{"a": [1, 2]}') == 1.0
    assert value(registry, "json_valid", "{'a': 1}") == 0.0
    assert value(registry, "json_valid", '{"a": NaN}') == 0.0
    fenced = '```json\n{"a": 1}\n```'
    assert value(registry, "json_valid", fenced) == 0.0
    assert value(registry, "json_valid", fenced, strip_code_fence=True) == 1.0
    assert value(registry, "json_valid", "[" * 10 + "]" * 10, max_depth=5) == 0.0
    failed = registry.build("json_valid").score(ScoringInput("nope"))
    assert str(failed.details["reason"]).startswith("not JSON")


SCHEMA = {
    "type": "object",
    "properties": {"price": {"type": "number", "minimum": 0}, "name": {"type": "string"}},
    "required": ["price", "name"],
}


def test_json_schema_pass_and_fail(registry: ScorerRegistry) -> None:
    scorer = registry.build("json_schema", {"schema": SCHEMA})
    assert scorer.score(ScoringInput('{"price": 3.5, "name": "tea"}')).value == 1.0
    negative = scorer.score(ScoringInput('{"price": -1, "name": "tea"}'))
    assert negative.value == 0.0
    assert negative.details["reason"] == "/price: -1 is less than the minimum of 0"
    missing = scorer.score(ScoringInput('{"price": 1}'))
    assert (missing.value, missing.details["reason"]) == (0.0, "/: 'name' is a required property")
    assert scorer.score(ScoringInput("not json")).value == 0.0


def test_json_schema_is_checked_when_the_scorer_is_built(registry: ScorerRegistry) -> None:
    with pytest.raises(InvalidInput, match=r"option 'schema': .*not a valid JSON Schema"):
        registry.build("json_schema", {"schema": {"type": "no-such-type"}})
    with pytest.raises(InvalidInput, match="option 'schema': Field required"):
        registry.build("json_schema", {})
    with pytest.raises(InvalidInput, match="points outside the schema"):
        registry.build("json_schema", {"schema": {"$ref": "https://example.com/s.json"}})


# --- ROUGE-L and BLEU ------------------------------------------------------------------------


def test_rouge_l_against_hand_computed_lcs(registry: ScorerRegistry) -> None:
    scorer = registry.build("rouge_l")
    # LCS("the cat was on the mat", "the cat sat on the mat") = "the cat on the mat": 5 of 6.
    same_length = scorer.score(ScoringInput("The cat was on the mat.", "the cat sat on the mat"))
    assert same_length.value == pytest.approx(5 / 6)
    assert same_length.details["lcs"] == 5
    # LCS("cat the mat", reference) = "cat the mat": P = 3/3, R = 3/6, F = 2PR/(P+R) = 2/3.
    short = scorer.score(ScoringInput("cat the mat", "the cat sat on the mat"))
    assert (short.details["precision"], short.details["recall"]) == (1.0, 0.5)
    assert short.value == pytest.approx(2 / 3)
    assert value(registry, "rouge_l", "x y z", "the cat sat") == 0.0
    assert value(registry, "rouge_l", "", "the cat sat") == 0.0
    # beta=2 weighs recall: (1 + 4) * 1 * 0.5 / (0.5 + 4 * 1) = 5/9.
    assert value(
        registry, "rouge_l", "cat the mat", "the cat sat on the mat", beta=2
    ) == pytest.approx(5 / 9)


def test_rouge_l_keeps_accented_words() -> None:
    assert tokens("La canción, ¿está aquí?") == ["la", "canción", "está", "aquí"]


def _lcs_table(a: Sequence[str], b: Sequence[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from("abcde"), max_size=90),
    st.lists(st.sampled_from("abcdef"), max_size=90),
)
def test_bit_parallel_lcs_equals_the_dynamic_programming_table(a: list[str], b: list[str]) -> None:
    assert lcs_length(a, b) == _lcs_table(a, b)


PAIRS = [
    ("The cat sat on the mat.", "The cat is sitting on the mat."),
    ("Prices rose 3.5% in 2023-24, (per the report).", "Prices rose by 3.5 % in 2023 - 24."),
    ("Él dijo: «¡Hola!» & se fue...", "El dijo &quot;hola&quot; y se fue."),
    ("It is raining today in Madrid", "Today it rains in Madrid"),
    ("completely different", "The cat is sitting on the mat."),
    ("", "reference"),
]


@pytest.mark.parametrize(("output", "expected"), PAIRS)
def test_bleu_is_sacrebleus_sentence_bleu(
    registry: ScorerRegistry, output: str, expected: str
) -> None:
    sacrebleu = pytest.importorskip("sacrebleu")
    score = registry.build("bleu").score(ScoringInput(output, expected))
    assert score.value == pytest.approx(sacrebleu.sentence_bleu(output, [expected]).score / 100)
    lowered = registry.build("bleu", {"lowercase": True, "tokenize": "intl"})
    reference = sacrebleu.sentence_bleu(output, [expected], lowercase=True, tokenize="intl")
    assert lowered.score(ScoringInput(output, expected)).value == pytest.approx(
        reference.score / 100
    )


_TOKENIZER_TEXT = st.text(
    alphabet=st.sampled_from(list(" \n\t.,-&;<>\"'019aZéñ!?()[]{}~`^_@#$%*+=:/|\\")),
    max_size=40,
) | st.lists(
    st.sampled_from(["&amp;", "&quot;", "&lt;", "<skipped>", "-\n", "3-4", "a.", ".5", "x , y"]),
    max_size=6,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(_TOKENIZER_TEXT)
def test_the_fast_13a_tokenizer_equals_sacrebleus(line: str) -> None:
    tokenizer_13a = pytest.importorskip("sacrebleu.tokenizers.tokenizer_13a")
    assert tokenize_13a(line) == tokenizer_13a.Tokenizer13a()(line)


_SENTENCE = st.lists(
    st.sampled_from(
        ["the", "The", "cat", "sat", "on", "mat", "3.5", "-", ",", ".", "2023-24", "é"]
    ),
    max_size=14,
).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(_SENTENCE, _SENTENCE, st.sampled_from(["exp", "floor", "add-k", "none"]), st.booleans())
def test_bleu_equals_sacrebleu_on_any_pair(
    output: str, expected: str, smooth_method: str, lowercase: bool
) -> None:
    sacrebleu = pytest.importorskip("sacrebleu")
    registry = ScorerRegistry(BuiltinScorers().modelcycle_register_scorers())
    options = {"smooth_method": smooth_method, "lowercase": lowercase}
    ours = registry.build("bleu", options).score(ScoringInput(output, expected)).value
    theirs = sacrebleu.sentence_bleu(output, [expected], **options).score / 100
    assert ours == pytest.approx(theirs, abs=1e-12)


def test_bleu_without_sacrebleu_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sacrebleu", None)
    monkeypatch.setitem(sys.modules, "sacrebleu.metrics", None)
    monkeypatch.setitem(sys.modules, "sacrebleu.metrics.bleu", None)
    registry = ScorerRegistry(BuiltinScorers().modelcycle_register_scorers())
    with pytest.raises(MissingExtra) as caught:
        registry.build("bleu")
    assert caught.value.message == "sacrebleu is not installed; run: pip install 'modelcycle[eval]'"


# --- measures --------------------------------------------------------------------------------


def test_latency_and_cost_return_the_measurement_or_an_error(registry: ScorerRegistry) -> None:
    latency, cost = registry.build("latency"), registry.build("cost")
    assert (latency.kind, latency.higher_is_better) == ("measure", False)
    assert latency.score(ScoringInput("x", latency_ms=812.5)).value == 812.5
    assert cost.score(ScoringInput("x", cost=0.0021)).value == 0.0021
    assert latency.score(ScoringInput("x")).error == "latency: latency was not measured"
    assert cost.score(ScoringInput("x")).value is None
    assert latency.score(ScoringInput("x", latency_ms=-1)).value is None


# --- registry, options, plugins --------------------------------------------------------------


def test_unknown_scorer_and_unknown_option_are_named(registry: ScorerRegistry) -> None:
    with pytest.raises(InvalidInput, match=r"unknown scorer 'rouge' \(known: .*rouge_l"):
        registry.build("rouge")
    with pytest.raises(InvalidInput) as caught:
        registry.build("exact_match", {"ignorecase": True})
    assert "unknown option 'ignorecase'" in caught.value.message
    assert "ignore_case" in caught.value.message  # the known options are listed
    with pytest.raises(InvalidInput, match="unknown option 'x'"):
        registry.build("latency", {"x": 1})
    with pytest.raises(InvalidInput, match="option 'beta'"):
        registry.build("rouge_l", {"beta": 0})
    with pytest.raises(InvalidInput, match="options must be JSON"):
        registry.build("rouge_l", {"beta": object()})


def test_the_same_options_give_the_same_scorer(registry: ScorerRegistry) -> None:
    assert registry.build("rouge_l", {"beta": 2}) is registry.build("rouge_l", {"beta": 2})
    assert registry.build("rouge_l") is not registry.build("rouge_l", {"beta": 2})


class _Length(Scorer):
    """Words in the output, per 100."""

    kind = "continuous"
    needs_reference = False
    higher_is_better = True

    def __init__(self, options: Mapping[str, Any]):
        self.name = "length"
        self._per = float(options.get("per", 100))

    def score(self, sample: ScoringInput) -> Score:
        return Score.of(min(len(sample.output.split()) / self._per, 1.0))


class _LengthPlugin:
    @hookimpl
    def modelcycle_register_scorers(self) -> Mapping[str, Any]:
        return {"length": _Length, "exact_match": _Length, "broken": lambda options: object()}


def test_a_plugin_adds_and_overrides_scorers_through_the_hook() -> None:
    manager = build_plugin_manager([BuiltinScorers(), _LengthPlugin()], load_entry_points=False)
    registry = ScorerRegistry.from_plugins(manager)
    assert {"length", "rouge_l", "refusal", "broken"} <= set(registry.names())
    scorer = registry.build("length", {"per": 4})
    assert scorer.score(ScoringInput("one two three")).value == 0.75
    assert isinstance(registry.build("exact_match"), _Length)  # registered later: it wins
    with pytest.raises(InvalidInput, match="lacks name, kind, needs_reference"):
        registry.build("broken")


class _Faulty(Scorer):
    name = "faulty"
    kind = "binary"
    needs_reference = False
    higher_is_better = True

    def __init__(self, result: float | Exception):
        self._result = result

    def score(self, sample: ScoringInput) -> Score:
        if isinstance(self._result, Exception):
            raise self._result
        return Score.of(self._result)


def test_score_batch_never_turns_a_failure_into_a_value() -> None:
    samples = [ScoringInput("a"), ScoringInput("b")]
    crashed = score_batch(_Faulty(RuntimeError("model gone")), samples)
    assert [s.error for s in crashed] == ["faulty: RuntimeError: model gone"] * 2
    out_of_range = score_batch(_Faulty(0.5), samples)
    assert out_of_range[0].error == "faulty: value 0.5 is not 0 or 1 (binary scorer)"
    assert [s.value for s in score_batch(_Faulty(1.0), samples)] == [1.0, 1.0]
    assert score_batch(_Faulty(1.0), []) == []


def test_a_score_holds_a_value_or_an_error() -> None:
    with pytest.raises(ValueError, match="either a value or an error"):
        Score(1.0, "also an error")
    with pytest.raises(ValueError, match="either a value or an error"):
        Score(None)


# --- embedding similarity --------------------------------------------------------------------


class _CountingEmbedder:
    """Two-dimensional 'embeddings': texts starting with 'a' point one way, others another."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        self.calls.append(list(texts))
        rows = [[1.0, 0.0] if text.startswith("a") else [0.0, 1.0] for text in texts]
        return np.asarray(rows, dtype=np.float32)


def test_embedding_similarity_batches_every_pair_in_one_call() -> None:
    embedder = _CountingEmbedder()
    scorer = EmbeddingSimilarity(EmbeddingOptions(), embedder=embedder)  # type: ignore[arg-type]
    samples = [ScoringInput("apple", "avocado"), ScoringInput("x"), ScoringInput("apple", "b")]
    scores = scorer.score_many(samples)
    assert embedder.calls == [["apple", "avocado", "apple", "b"]]
    assert [s.value for s in scores] == [1.0, None, 0.0]
    assert scores[1].error is not None


@pytest.fixture(scope="module")
def embedding_scorer(registry: ScorerRegistry) -> Scorer:
    pytest.importorskip("sentence_transformers", reason="needs the embed extra")
    try:
        return registry.build("embedding_similarity", {"batch_size": 16})
    except MissingExtra as exc:
        pytest.skip(f"the bundled model is not installed: {exc.message}")


def test_paraphrases_score_higher_than_unrelated_sentences(embedding_scorer: Scorer) -> None:
    reference = "The meeting has been moved to Thursday afternoon."
    samples = [
        ScoringInput("We rescheduled the meeting for Thursday afternoon.", reference),
        ScoringInput("The meeting is now on Thursday, after lunch.", reference),
        ScoringInput("Bananas are rich in potassium.", reference),
        ScoringInput("The stock market fell sharply in 2008.", reference),
    ]
    values = [s.value for s in embedding_scorer.score_many(samples)]
    scored = [v for v in values if v is not None and 0.0 <= v <= 1.0]
    assert len(scored) == len(samples)
    paraphrases, unrelated = scored[:2], scored[2:]
    assert min(paraphrases) > max(unrelated) + 0.3
    assert embedding_scorer.score(ScoringInput(reference, reference)).value == pytest.approx(
        1.0, abs=1e-4
    )
