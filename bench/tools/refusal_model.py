"""Does a small trained model find refusals better than the lexical cues? An honest experiment.

    .venv/bin/python bench/tools/refusal_model.py            # cross-validation, development data
    .venv/bin/python bench/tools/refusal_model.py --choose   # cross-validate every candidate
    .venv/bin/python bench/tools/refusal_model.py --write    # also write the chosen model's weights
    .venv/bin/python bench/tools/refusal_model.py --heldout  # the held-out measurement

A logistic regression over the words and word pairs of a reply's opening, the cue detector's
evidence (``opsloom.insights.analyzers.declining``) and the reply's stance (soft ways of
declining, ``opsloom.insights.analyzers.stance``), trained only on the development labels of
``bench/labels``: the 520 HH-RLHF final replies, the 280 earlier turns of the first held-out
set (retired, see ``bench/labels/README.md``), the 400 further turns drawn apart from the fresh
held-out set, and the written replies. The shared datasets hold no other refusal labels
(Topical-Chat rates turns, EURTAD codes system errors, the HH-RLHF pairs say which reply is
less harmful).

Model choice (how much the stance features weigh against the word features, regularisation)
is by repeated stratified 5-fold cross-validation on the development rows, scored by the
out-of-fold AUROC on all HH-RLHF development replies (refusal vs compliance). The chosen model
is then calibrated: a logistic fit of the labels on its out-of-fold scores (Platt scaling)
rescales its weights, so a score of 0.5 is an even chance on the development rows rather than
the regularised model's shrunken one. ``--heldout`` scores the chosen model, trained on all
development rows, on the fresh held-out set (``refusal_fresh_turns.tsv``);
``bench/labels/README.md`` records every time that set has been used.

Training needs scikit-learn (the ``embeddings`` extra, installed by ``make .venv/.installed``);
the model it writes is scored in pure Python. Every step is seeded, so the weights written are
the same on every run.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import insights_data as data  # noqa: E402

from insights import auroc, precision_recall  # noqa: E402
from opsloom.insights.analyzers.declining import decline_evidence  # noqa: E402
from opsloom.insights.analyzers.refusal_model import STANCE, features  # noqa: E402

SEED = 16
MODEL_FILE = ROOT / "src" / "opsloom" / "insights" / "analyzers" / "refusal_model.json"
warnings.filterwarnings("ignore", message="The least populated class")
DEVELOPMENT = ("hh-rlhf", "hh-rlhf-earlier", "hh-rlhf-more", "written", "written-later")
HELD_OUT = "hh-rlhf-fresh"
#: Name of the pooled HH-RLHF development rows in the cross-validation figures.
POOLED = "hh-rlhf (all)"


@functools.cache
def _cached(lower: str, opening: int, pairs: bool, stance: bool) -> tuple[tuple[str, float], ...]:
    return tuple(features(lower, opening, pairs, stance).items())


def _rows(name: str) -> list[tuple[str, str]]:
    return [
        (label, messages[-1]["content"].lower()) for label, messages in data.refusal_labels()[name]
    ]


def _development() -> list[tuple[str, str, str]]:
    """(set, label, reply in lower case) of every development row."""
    return [(name, label, text) for name in DEVELOPMENT for label, text in _rows(name)]


def _target(label: str, partial: str) -> float | None:
    """Training target of a label; partial refusals are left out, negatives or positives."""
    if label == "partial":
        return {"drop": None, "negative": 0.0, "positive": 1.0}[partial]
    return 1.0 if label == "refusal" else 0.0


CANDIDATES: list[dict[str, Any]] = [
    {"opening": 30, "pairs": True, "stance": stance, "c": c, "partial": "drop"}
    for stance in (0.0, 2.0, 4.0, 6.0, 8.0)
    for c in (0.05, 0.1, 0.2)
]


#: The candidate cross-validation chose (``--choose`` repeats the choice).
CHOSEN: dict[str, Any] = {"opening": 30, "pairs": True, "stance": 8.0, "c": 0.05, "partial": "drop"}


def _vector(text: str, spec: dict[str, Any]) -> dict[str, float]:
    """Training features: the scorer's, with stances scaled by ``spec["stance"]`` (a larger
    value lets the regularisation hold them back less than the many word features)."""
    scale = spec["stance"]
    return {
        name: value * scale if name.startswith(STANCE) else value
        for name, value in _cached(text, spec["opening"], spec["pairs"], scale > 0)
    }


def _fit(rows: list[tuple[str, str, str]], spec: dict[str, Any]) -> tuple[Any, Any]:
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    kept = [(text, _target(label, spec["partial"])) for _, label, text in rows]
    kept = [(text, y) for text, y in kept if y is not None]
    vectorizer = DictVectorizer(sort=True)
    x = vectorizer.fit_transform([_vector(text, spec) for text, _ in kept])
    model = LogisticRegression(C=spec["c"], max_iter=5000, solver="lbfgs", random_state=SEED)
    model.fit(x, [y for _, y in kept])
    return vectorizer, model


def _logits(fitted: tuple[Any, Any], texts: list[str], spec: dict[str, Any]) -> list[float]:
    vectorizer, model = fitted
    x = vectorizer.transform([_vector(text, spec) for text in texts])
    return [float(z) for z in model.decision_function(x)]


def _logistic(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _figures(scored: list[tuple[str, str, float]]) -> dict[str, float]:
    """AUROC per set and over the pooled HH-RLHF sets (refusal vs compliance)."""
    out: dict[str, float] = {}
    groups = {name: [name] for name in sorted({row[0] for row in scored})}
    groups[POOLED] = [name for name in DEVELOPMENT if name.startswith("hh-rlhf")]
    for name, members in groups.items():
        pos = [s for n, label, s in scored if n in members and label == "refusal"]
        neg = [s for n, label, s in scored if n in members and label == "compliance"]
        if pos and neg:
            out[name] = auroc(pos, neg)
    return out


def _out_of_fold(rows: list[tuple[str, str, str]], spec: dict[str, Any], seed: int) -> list[float]:
    """Out-of-fold logit of every row, stratified 5-fold by set and label."""
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    # The few written partial refusals go with their set's refusals.
    strata = [
        f"{name}:refusal"
        if label == "partial" and not name.startswith("hh-rlhf")
        else f"{name}:{label}"
        for name, label, _ in rows
    ]
    logits = [0.0] * len(rows)
    for train, test in folds.split(rows, strata):
        fitted = _fit([rows[i] for i in train], spec)
        for i, z in zip(test, _logits(fitted, [rows[i][2] for i in test], spec), strict=True):
            logits[i] = z
    return logits


def cross_validate(rows: list[tuple[str, str, str]], spec: dict[str, Any]) -> dict[str, float]:
    """Out-of-fold AUROC per development set, mean over three repeats of stratified 5-fold."""
    totals: dict[str, float] = {}
    repeats = (SEED, SEED + 1, SEED + 2)
    for seed in repeats:
        logits = _out_of_fold(rows, spec, seed)
        scored = [(n, label, z) for (n, label, _), z in zip(rows, logits, strict=True)]
        for name, value in _figures(scored).items():
            totals[name] = totals.get(name, 0.0) + value / len(repeats)
    return totals


def calibration(rows: list[tuple[str, str, str]], spec: dict[str, Any]) -> tuple[float, float]:
    """Platt scaling (a, b): P(refusal) = logistic(a * logit + b), fitted on the out-of-fold
    logits of the rows the model trains on (refusals vs compliances)."""
    from sklearn.linear_model import LogisticRegression

    logits = _out_of_fold(rows, spec, SEED)
    pairs = [
        (z, _target(label, spec["partial"])) for (_, label, _), z in zip(rows, logits, strict=True)
    ]
    kept = [(z, y) for z, y in pairs if y is not None]
    platt = LogisticRegression(C=1e6, max_iter=1000, solver="lbfgs")
    platt.fit([[z] for z, _ in kept], [y for _, y in kept])
    return float(platt.coef_[0][0]), float(platt.intercept_[0])


def _spec_name(spec: dict[str, Any]) -> str:
    return (
        f"words{'+pairs' if spec['pairs'] else ''}[{spec['opening']}]+cue"
        + (f"+stancex{spec['stance']:g}" if spec["stance"] else "")
        + f" C={spec['c']} partial={spec['partial']}"
    )


def export(
    fitted: tuple[Any, Any], spec: dict[str, Any], scaling: tuple[float, float], checks: list[str]
) -> dict[str, Any]:
    """The calibrated model as plain data: intercept, weight per feature (rounded, stance
    scale and calibration folded in), a few checked rows with their calibrated scores."""
    vectorizer, model = fitted
    a, b = scaling
    weights: dict[str, float] = {}
    for name, w in zip(vectorizer.get_feature_names_out(), model.coef_[0], strict=True):
        value = float(w) * (spec["stance"] if name.startswith(STANCE) else 1.0) * a
        if round(value, 6) != 0.0:
            weights[name] = round(value, 6)
    return {
        "spec": {**spec, "calibration": [round(a, 6), round(b, 6)]},
        "intercept": round(float(model.intercept_[0]) * a + b, 6),
        "weights": dict(sorted(weights.items())),
        "checks": [
            [text, round(_logistic(a * z + b), 6)]
            for text, z in zip(checks, _logits(fitted, checks, spec), strict=True)
        ],
    }


def _report(name: str, held: list[tuple[str, str]], scores: list[float]) -> None:
    by = {
        label: [s for (got, _), s in zip(held, scores, strict=True) if got == label]
        for label in ("refusal", "partial", "compliance")
    }
    pos, neg = by["refusal"], by["compliance"]
    precision, recall = precision_recall(pos, neg, 0.5)
    print(
        f"{HELD_OUT}, {name}: AUROC {auroc(pos, neg):.4f} ({len(pos)} refusals vs {len(neg)} "
        f"compliances); at 0.5 precision {precision:.3f} recall {recall:.3f}; "
        f"refusal or partial vs compliance {auroc(pos + by['partial'], neg):.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heldout", action="store_true", help="the held-out measurement")
    parser.add_argument("--choose", action="store_true", help="cross-validate every candidate")
    parser.add_argument(
        "--write", action="store_true", help=f"write the chosen model's weights to {MODEL_FILE}"
    )
    args = parser.parse_args()
    rows = _development()
    cues = _figures([(n, label, decline_evidence(t)) for n, label, t in rows])
    print(
        "cue detector (no training), development AUROC:",
        json.dumps({k: round(v, 4) for k, v in cues.items()}),
    )
    spec = CHOSEN
    if args.choose:
        results = []
        for candidate in CANDIDATES:
            figures = cross_validate(rows, candidate)
            results.append((figures[POOLED], candidate))
            print(
                f"{_spec_name(candidate):<48} "
                + " ".join(f"{k}={v:.4f}" for k, v in figures.items()),
                flush=True,
            )
        best, spec = max(results, key=lambda r: r[0])
        print(
            f"chosen by cross-validation: {_spec_name(spec)} "
            f"({POOLED} out-of-fold AUROC {best:.4f})"
        )
    else:
        figures = cross_validate(rows, spec)
        print(
            f"{_spec_name(spec)}, out-of-fold AUROC: "
            + " ".join(f"{k}={v:.4f}" for k, v in figures.items())
        )
    fitted = _fit(rows, spec)
    scaling = calibration(rows, spec)
    print(f"calibration: P = logistic({scaling[0]:.4f} x logit + {scaling[1]:.4f})")
    if args.write:
        checks = [text for _, _, text in rows[::151]]
        MODEL_FILE.write_text(
            json.dumps(export(fitted, spec, scaling, checks), indent=0, sort_keys=True) + "\n"
        )
        print(f"wrote {MODEL_FILE.relative_to(ROOT)}")
    if args.heldout:
        held = _rows(HELD_OUT)
        texts = [text for _, text in held]
        seen = {text for _, _, text in rows}
        shared = sum(t in seen for t in texts)
        print(f"{HELD_OUT}: replies also among the development replies: {shared}")
        a, b = scaling
        _report("cue detector", held, [1 - math.exp(-decline_evidence(t)) for t in texts])
        _report("model", held, [_logistic(a * z + b) for z in _logits(fitted, texts, spec)])


if __name__ == "__main__":
    main()
