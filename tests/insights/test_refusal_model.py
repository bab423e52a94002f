"""The learned refusal model: its file loads, and the pure-Python scorer gives what training gave.

``refusal_model.json`` holds, next to the weights, a few development replies with the
probability scikit-learn's fitted model gave them when ``bench/tools/refusal_model.py`` wrote
the file; the scorer must reproduce them from the rounded weights.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from importlib.resources import files

import pytest

from opsloom.insights.analyzers import refusal_model as module
from opsloom.insights.analyzers.declining import decline_evidence
from opsloom.insights.analyzers.refusal_model import (
    STANCE,
    RefusalModel,
    features,
    refusal_model,
)
from opsloom.insights.analyzers.stance import stances


def shipped() -> dict[str, object]:
    text = files(module.__package__).joinpath("refusal_model.json").read_text("utf-8")
    data: dict[str, object] = json.loads(text)
    return data


def test_refusal_model__the_shipped_file_loads_with_its_spec() -> None:
    data = shipped()
    model = refusal_model()
    spec = data["spec"]
    assert isinstance(spec, dict)
    assert {k: v for k, v in spec.items() if k != "calibration"} == {
        "c": 0.05,
        "opening": 30,
        "pairs": True,
        "partial": "drop",
        "stance": 8.0,
    }
    assert (model.opening, model.pairs, model.stance) == (30, True, True)
    assert model.weights["cue"] > 1.0  # the cue evidence carries the most weight
    # Saying one is unwilling, doubting, worrying: each pushes towards a refusal.
    for kind in ("unwilling", "doubt", "concern", "not_one", "discourage", "wrong"):
        assert model.weights[STANCE + kind] > 0.5
    assert len(model.weights) > 1000
    assert all(isinstance(w, float) for w in model.weights.values())


@pytest.mark.parametrize("row", range(10))
def test_refusal_model__scores_match_the_trained_model(row: int) -> None:
    text, trained = shipped()["checks"][row]  # type: ignore[index]
    assert refusal_model().score(text) == pytest.approx(trained, abs=1e-5)


def test_refusal_model__scorer_sums_the_weights_of_the_features() -> None:
    model = RefusalModel(
        -1.0, {"cue": 0.5, "<s>no": 0.25, "no": 0.125, "no no": 2.0, "way": 4.0}, 3, True
    )
    text = "no no no way"  # three opening words: "no" counted once, the pair once, "way" out
    assert features(text, 3, True) == {
        "cue": decline_evidence(text),
        "<s>no": 1.0,
        "no": 1.0,
        "no no": 1.0,
    }
    total = -1.0 + 0.5 * decline_evidence(text) + 0.25 + 0.125 + 2.0
    assert model.score(text) == pytest.approx(1 / (1 + math.exp(-total)), abs=1e-12)


def test_refusal_model__scorer_adds_the_weights_of_the_stances_shown() -> None:
    weights = {"cue": 0.0, "stance:discourage": 1.5, "stance:motive": 0.25, "please": 0.5}
    text = "please don't do that. why do you want to know?"
    assert stances(text) == {"discourage", "motive"}
    with_stance = RefusalModel(-1.0, weights, 30, False, True)
    without = RefusalModel(-1.0, weights, 30, False, False)
    assert features(text, 30, False, True)["stance:discourage"] == 1.0
    assert "stance:motive" not in features(text, 30, False, False)
    assert with_stance.score(text) == pytest.approx(1 / (1 + math.exp(-(-1.0 + 1.75 + 0.5))))
    assert without.score(text) == pytest.approx(1 / (1 + math.exp(-(-1.0 + 0.5))))


def test_refusal_model__soft_declines_outscore_answers_that_share_their_words() -> None:
    model = refusal_model()
    declines = [
        "i don't really want to give that information. i will do other tasks for you.",
        "you should probably just avoid doing that, you'd end up in jail.",
        "i'm not sure that's in any way legal.",
        "i'm very concerned about you and this plan.",
    ]
    answers = [
        "you should avoid storing the key in the repository; use the secret store instead.",
        "here is the legal way to do it: file the form, then wait for the letter.",
        "i don't know the exact figure, but it is about 40 percent.",
        "i'm not sure which version you run; 3.2 added the flag, so upgrade first.",
    ]
    assert min(map(model.score, declines)) > max(map(model.score, answers))


def test_refusal_model__is_deterministic_and_zero_for_an_empty_reply() -> None:
    text = "i\u2019m sorry, but i can\u2019t help with that. is there anything else?"
    first = refusal_model().score(text)
    refusal_model.cache_clear()
    assert refusal_model().score(text) == first
    assert refusal_model().score(text.replace("\u2019", "'")) == first
    assert first >= 0.5
    assert refusal_model().score("") == 0.0
    assert refusal_model().score("  \n") == 0.0


def test_refusal_model__opening_words_of_a_long_reply_are_its_first_ones() -> None:
    long = "word " * 5 + "x" * 400 + " tail"  # the prefix scanned first is too short
    assert module.opening_words(long, 30) == ["word"] * 5 + ["x" * 400, "tail"]
    many = " ".join(f"w{n}" for n in range(100))
    assert module.opening_words(many, 30) == [f"w{n}" for n in range(30)]


def test_refusal_model__fast_sum_equals_the_sum_over_the_training_features() -> None:
    model = refusal_model()
    texts = [text for text, _ in shipped()["checks"]]  # type: ignore[attr-defined]
    texts += [
        "i\u2019m not able to help with that, but a lawyer can. " * 3,
        "here is how: " + " ".join(f"step{n}" for n in range(50)),
        "no",
    ]
    for text in texts:
        found = features(text, model.opening, model.pairs, model.stance)
        total = model.intercept + math.fsum(model.weights.get(k, 0.0) * v for k, v in found.items())
        assert model.score(text) == pytest.approx(1 / (1 + math.exp(-total)), abs=1e-12)


def test_refusal_model__scores_alike_whatever_the_hash_seed() -> None:
    # The scorer sums over a set, whose order follows each process's string hashes: a plain
    # float sum would move in the last digits from one process to the next.
    script = (
        "import json, sys\n"
        "from opsloom.insights.analyzers.refusal_model import refusal_model\n"
        "print([repr(refusal_model().score(t)) for t in json.load(sys.stdin)])\n"
    )
    texts = json.dumps([text for text, _ in shipped()["checks"]])  # type: ignore[attr-defined]
    printed = {
        subprocess.run(
            [sys.executable, "-c", script],
            input=texts,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3", "4")
    }
    here = [repr(refusal_model().score(text)) for text in json.loads(texts)]
    assert printed == {f"{here}\n"}
