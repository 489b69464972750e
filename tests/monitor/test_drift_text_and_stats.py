"""The pieces of a drift check: language guesses, refusals, prompts, and the tests' maths."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modelcycle.monitor import drift_stats
from modelcycle.monitor.drift_text import is_refusal, language_of, output_text, prompt_text


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("What is the best way to learn how to cook rice?", "en"),
        ("Quelle est la meilleure façon de cuire le riz pour les débutants ?", "fr"),
        ("Wie kann ich das Passwort für mein Konto ändern, und warum ist es nicht sicher?", "de"),
        ("¿Cuál es la mejor manera de aprender a cocinar el arroz para la cena?", "es"),
        ("Qual è il modo migliore per imparare l'italiano e perché è così bello?", "it"),
        ("def add(a, b):\n    return a + b\n\nprint(add(1, 2));\n", "code"),
        ("SELECT name FROM users WHERE id = 1;\nUPDATE users SET x = 2;", "code"),
        ("请告诉我北京的天气怎么样", "zh"),
        ("東京の天気はどうですか。ひらがなもあります", "ja"),
        ("Как мне сбросить пароль от учётной записи?", "ru"),
        ("12345 !!! ???", "other"),
    ],
)
def test_the_language_guess_names_common_languages_scripts_and_code(
    text: str, language: str
) -> None:
    assert language_of(text) == language


@pytest.mark.parametrize(
    ("answer", "refused"),
    [
        ("I'm sorry, but I can't help with that.", True),
        ("I cannot assist with creating malware.", True),
        ("As an AI language model, I don't have opinions.", True),
        ("I\u2019m unable to provide medical advice.", True),
        ("I won't share that information.", True),
        ("Sorry for the wait! Paris is the capital of France.", False),
        ("You can't go wrong with rice: boil it for 12 minutes.", False),
        ("Here is how I can help with that: first, open the settings.", False),
    ],
)
def test_refusals_are_recognised_by_their_opening(answer: str, refused: bool) -> None:
    assert is_refusal(answer) is refused


def test_the_prompt_of_a_span_is_its_last_user_turn() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
    ]
    assert prompt_text(json.dumps(messages)) == "second"
    assert prompt_text(json.dumps("a prompt")) == "a prompt"
    assert prompt_text(json.dumps(["one", "two"])) == "one\ntwo"
    assert prompt_text("not json at all") == "not json at all"
    assert prompt_text(None) is None
    assert output_text(json.dumps(["first answer", "second"])) == "first answer"
    assert output_text("plain answer") == "plain answer"


def test_numeric_shift_flags_a_moved_distribution_and_not_a_resample() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(100, 10, 500)
    same = drift_stats.numeric_shift(reference, rng.normal(100, 10, 500))
    moved = drift_stats.numeric_shift(reference, rng.normal(140, 10, 500))

    assert same.p_value is not None
    assert same.p_value > 0.05
    assert same.statistic < 0.1
    assert moved.p_value is not None
    assert moved.p_value < 1e-10
    assert moved.statistic > 1.0
    assert sum(moved.evidence["histogram"]["current_share"]) == pytest.approx(1.0, abs=1e-3)


def test_category_shift_measures_the_change_of_mix() -> None:
    result = drift_stats.category_shift(["en"] * 90 + ["fr"] * 10, ["en"] * 40 + ["fr"] * 60)

    assert result.statistic == pytest.approx(0.5)
    assert result.p_value is not None
    assert result.p_value < 1e-6
    assert result.evidence["largest_changes"][0]["change"] in (0.5, -0.5)
    assert drift_stats.category_shift(["en"] * 5, ["en"] * 5).p_value == 1.0


def test_rate_and_score_shifts() -> None:
    up = drift_stats.rate_shift(5, 200, 60, 200)
    flat = drift_stats.rate_shift(10, 200, 11, 200)
    never = drift_stats.rate_shift(0, 50, 0, 50)
    worse = drift_stats.score_shift([0.9] * 50 + [0.8] * 50, [0.3] * 50 + [0.2] * 50)

    assert up.statistic == pytest.approx(0.275)
    assert up.p_value is not None
    assert up.p_value < 1e-6
    assert flat.p_value is not None
    assert flat.p_value > 0.5
    assert never.p_value == 1.0
    assert worse.statistic == pytest.approx(0.6)
    assert worse.p_value is not None
    assert worse.p_value < 1e-10


def test_embedding_tests_tell_shifted_vectors_from_resampled_ones() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(0, 1, (150, 16)).astype(np.float32)
    same = rng.normal(0, 1, (150, 16)).astype(np.float32)
    shifted = rng.normal(0.6, 1, (150, 16)).astype(np.float32)

    same_auc, _ = drift_stats.classifier_auc(reference, same)
    shifted_auc, scores = drift_stats.classifier_auc(reference, shifted)
    same_mmd = drift_stats.mmd_test(reference, same)
    shifted_mmd = drift_stats.mmd_test(reference, shifted)

    assert same_auc.statistic < 0.6
    assert same_auc.p_value is not None
    assert same_auc.p_value > 0.05
    assert shifted_auc.statistic > 0.9
    assert shifted_auc.p_value is not None
    assert shifted_auc.p_value < 1e-6
    assert scores.shape == (150,)
    assert same_mmd.p_value is not None
    assert same_mmd.p_value > 0.05
    assert shifted_mmd.p_value is not None
    assert shifted_mmd.p_value < 0.01
