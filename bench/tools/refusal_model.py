"""Does a small trained model find refusals better than the lexical cues? An honest experiment.

    .venv/bin/python bench/tools/refusal_model.py            # cross-validation, development data
    .venv/bin/python bench/tools/refusal_model.py --write    # also write the chosen model's weights
    .venv/bin/python bench/tools/refusal_model.py --heldout  # the one held-out measurement

A logistic regression over the words and word pairs of a reply's opening plus the cue
detector's evidence (``opsloom.insights.analyzers.declining``), trained only on the development
labels of ``bench/labels``: the 520 HH-RLHF final replies and the written replies (both
written sets; the later one is no longer held out). The shared datasets hold no other refusal
labels (Topical-Chat rates turns, EURTAD codes system errors, the HH-RLHF pairs say which reply
is less harmful). Model choice (features, regularisation, what partial refusals count as) is by
repeated stratified 5-fold cross-validation on the development rows, scored by the
out-of-fold AUROC on the HH-RLHF replies (refusal vs compliance), the rows most like the
held-out set. ``--heldout`` scores the chosen model, trained on all development rows, on the
280 earlier HH-RLHF turns of ``refusal_earlier_turns.tsv`` once; ``bench/labels/README.md``
records how often that set has been used.

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
from opsloom.insights.analyzers.refusal_model import features  # noqa: E402

SEED = 16
MODEL_FILE = ROOT / "src" / "opsloom" / "insights" / "analyzers" / "refusal_model.json"
warnings.filterwarnings("ignore", message="The least populated class")
DEVELOPMENT = ("hh-rlhf", "written", "written-later")
#: The held-out set, then the one it replaced (measured on four occasions, three replies shared
#: with the development rows; printed for comparison, no longer held out).
HELD_OUT = ("hh-rlhf-fresh", "hh-rlhf-earlier")


@functools.cache
def _cached(lower: str, opening: int, pairs: bool) -> tuple[tuple[str, float], ...]:
    return tuple(features(lower, opening, pairs).items())


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
    {"words": words, "pairs": pairs, "opening": opening, "cue": cue, "c": c, "partial": partial}
    for words in (True, False)
    for pairs in ((True, False) if words else (False,))
    for opening in ((30, 60) if words else (60,))
    for cue in (True, False)
    if words or cue
    for c in (0.1, 0.3, 1.0, 3.0)
    for partial in ("drop", "negative")
]


#: The candidate cross-validation chose (``--choose`` repeats the choice; it takes minutes).
CHOSEN: dict[str, Any] = {
    "words": True,
    "pairs": True,
    "opening": 30,
    "cue": True,
    "c": 0.1,
    "partial": "drop",
}


def _vector(text: str, spec: dict[str, Any]) -> dict[str, float]:
    found = dict(_cached(text, spec["opening"], spec["pairs"]))
    if not spec["cue"]:
        del found["cue"]
    if not spec["words"]:
        found = {"cue": found["cue"]}
    return found


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


def _predict(fitted: tuple[Any, Any], texts: list[str], spec: dict[str, Any]) -> list[float]:
    vectorizer, model = fitted
    x = vectorizer.transform([_vector(text, spec) for text in texts])
    return [float(p) for p in model.predict_proba(x)[:, 1]]


def _figures(scored: list[tuple[str, str, float]]) -> dict[str, float]:
    """AUROC per set (refusal vs compliance) of (set, label, score) rows."""
    out: dict[str, float] = {}
    for name in sorted({row[0] for row in scored}):
        pos = [s for n, label, s in scored if n == name and label == "refusal"]
        neg = [s for n, label, s in scored if n == name and label == "compliance"]
        out[name] = auroc(pos, neg)
    return out


def cross_validate(rows: list[tuple[str, str, str]], spec: dict[str, Any]) -> dict[str, float]:
    """Out-of-fold AUROC per development set, mean over three repeats of stratified 5-fold."""
    from sklearn.model_selection import StratifiedKFold

    totals: dict[str, float] = {}
    repeats = (SEED, SEED + 1, SEED + 2)
    for seed in repeats:
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
        # Rows stratified by set and label (the few written partial refusals with their set).
        strata = [
            f"{name}:refusal" if label == "partial" and name != "hh-rlhf" else f"{name}:{label}"
            for name, label, _ in rows
        ]
        scored: list[tuple[str, str, float]] = []
        for train, test in folds.split(rows, strata):
            fitted = _fit([rows[i] for i in train], spec)
            tested = [rows[i] for i in test]
            predicted = _predict(fitted, [text for _, _, text in tested], spec)
            scored += [(n, label, p) for (n, label, _), p in zip(tested, predicted, strict=True)]
        for name, value in _figures(scored).items():
            totals[name] = totals.get(name, 0.0) + value / len(repeats)
    return totals


def _spec_name(spec: dict[str, Any]) -> str:
    parts = []
    if spec["words"]:
        parts.append(f"words{'+pairs' if spec['pairs'] else ''}[{spec['opening']}]")
    if spec["cue"]:
        parts.append("cue")
    return "+".join(parts) + f" C={spec['c']} partial={spec['partial']}"


def export(fitted: tuple[Any, Any], spec: dict[str, Any], checks: list[str]) -> dict[str, Any]:
    """The model as plain data: intercept, weight per feature (rounded), a few checked rows."""
    vectorizer, model = fitted
    weights = {
        name: round(float(w), 6)
        for name, w in zip(vectorizer.get_feature_names_out(), model.coef_[0], strict=True)
        if round(float(w), 6) != 0.0
    }
    return {
        "spec": spec,
        "intercept": round(float(model.intercept_[0]), 6),
        "weights": dict(sorted(weights.items())),
        "checks": [
            [text, round(p, 6)]
            for text, p in zip(checks, _predict(fitted, checks, spec), strict=True)
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heldout", action="store_true", help="the one held-out measurement")
    parser.add_argument("--choose", action="store_true", help="cross-validate every candidate")
    parser.add_argument(
        "--write", action="store_true", help=f"write the chosen model's weights to {MODEL_FILE}"
    )
    args = parser.parse_args()
    rows = _development()
    cues = _figures([(n, label, 1 - math.exp(-decline_evidence(t))) for n, label, t in rows])
    print(
        "cue detector (no training), development AUROC:",
        json.dumps({k: round(v, 4) for k, v in cues.items()}),
    )
    spec = CHOSEN
    if args.choose:
        results = []
        for candidate in CANDIDATES:
            figures = cross_validate(rows, candidate)
            results.append((figures["hh-rlhf"], candidate))
            print(
                f"{_spec_name(candidate):<48} "
                + " ".join(f"{k}={v:.4f}" for k, v in figures.items()),
                flush=True,
            )
        best, spec = max(results, key=lambda r: r[0])
        print(
            f"chosen by cross-validation: {_spec_name(spec)} (hh-rlhf out-of-fold AUROC {best:.4f})"
        )
    else:
        figures = cross_validate(rows, spec)
        print(
            f"{_spec_name(spec)}, out-of-fold AUROC: "
            + " ".join(f"{k}={v:.4f}" for k, v in figures.items())
        )
    fitted = _fit(rows, spec)
    if args.write:
        checks = [text for _, _, text in rows[::97]]
        MODEL_FILE.write_text(
            json.dumps(export(fitted, spec, checks), indent=0, sort_keys=True) + "\n"
        )
        print(f"wrote {MODEL_FILE.relative_to(ROOT)}")
    if args.heldout:
        seen = {text for _, _, text in rows}
        for name in HELD_OUT:
            held = _rows(name)
            texts = [text for _, text in held]
            print(
                f"{name}: replies also among the development replies: "
                f"{sum(t in seen for t in texts)}"
            )
            for model, scores in (
                ("cue detector", [1 - math.exp(-decline_evidence(t)) for t in texts]),
                ("model", _predict(fitted, texts, spec)),
            ):
                by = {
                    label: [s for (got, _), s in zip(held, scores, strict=True) if got == label]
                    for label in ("refusal", "partial", "compliance")
                }
                pos, neg = by["refusal"], by["compliance"]
                precision, recall = precision_recall(pos, neg, 0.5)
                print(
                    f"{name}, {model}: AUROC {auroc(pos, neg):.4f} ({len(pos)} refusals vs "
                    f"{len(neg)} compliances); at 0.5 precision {precision:.3f} recall "
                    f"{recall:.3f}; refusal or partial vs compliance "
                    f"{auroc(pos + by['partial'], neg):.4f}"
                )

if __name__ == "__main__":
    main()
