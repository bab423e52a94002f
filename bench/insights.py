"""Conversation insights: accuracy against labelled data, speed and memory.

    .venv/bin/python bench/insights.py [--section sentiment,dissatisfaction,...]
        [--speed-conversations 20000] [--memory-conversations 100000]

Sections: sentiment, sentiment-identity (our VADER path gives the library's scores),
dissatisfaction, refusal, toxicity, relevance, pii, speed, memory (default:
all).

Prints each figure next to its target, with the dataset and the number of rows it was measured
on, then the same figures as JSON lines. Data: ``bench/insights_data.py`` (the shared labelled
sets, VADER's ground truth fetched from its sdist into a cache, generated PII fixtures, the
labelled refusals and toxic turns in ``bench/labels``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

# This tree's src/ unless PYTHONPATH names another (bench/ab.py puts the base revision's there;
# inserting src/ first would measure this tree's code on both sides).
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import insights_data as data

from opsloom.insights import Analysis, Conversation, Turn, conversations_from, read_stream
from opsloom.insights.analyzers.pii import SECRET_KINDS, find
from opsloom.insights.analyzers.sentiment import SentimentAnalyzer

FIGURES: list[dict[str, Any]] = []


def report(
    name: str, value: float, target: float | None, *, higher: bool = True, **about: Any
) -> None:
    """Print one figure next to its target and keep it for the JSON lines."""
    met = None if target is None else (value >= target if higher else value <= target)
    verdict = "" if met is None else ("  MET" if met else "  NOT MET")
    goal = "" if target is None else f"  (target {'≥' if higher else '≤'} {target})"
    detail = ", ".join(f"{k}={v}" for k, v in about.items())
    print(f"{name:<48} {value:>10.4f}{goal}{verdict}   [{detail}]", flush=True)
    FIGURES.append(
        {"figure": name, "value": round(value, 4), "target": target, "met": met, **about}
    )


def auroc(positives: list[float], negatives: list[float]) -> float:
    """Probability that a positive outscores a negative (ties count half): Mann-Whitney."""
    scored = sorted([(s, 1) for s in positives] + [(s, 0) for s in negatives])
    rank_sum = 0.0
    i = 0
    while i < len(scored):
        j = i
        while j < len(scored) and scored[j][0] == scored[i][0]:
            j += 1
        average = (i + j + 1) / 2  # 1-based average rank of the tie group
        rank_sum += average * sum(1 for k in range(i, j) if scored[k][1])
        i = j
    n_pos, n_neg = len(positives), len(negatives)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def precision_recall(
    positives: list[float], negatives: list[float], threshold: float
) -> tuple[float, float]:
    tp = sum(1 for s in positives if s >= threshold)
    fp = sum(1 for s in negatives if s >= threshold)
    return (tp / (tp + fp) if tp + fp else 0.0), tp / len(positives)


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and values[order[j]] == values[order[i]]:
            j += 1
        for k in range(i, j):
            ranks[order[k]] = (i + j - 1) / 2
        i = j
    return ranks


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = _ranks(a), _ranks(b)
    mean_a, mean_b = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - mean_a) * (y - mean_b) for x, y in zip(ra, rb, strict=True))
    var_a = sum((x - mean_a) ** 2 for x in ra)
    var_b = sum((y - mean_b) ** 2 for y in rb)
    return cov / (var_a * var_b) ** 0.5


# --- sections ------------------------------------------------------------------------------


def _dataset_texts() -> list[str]:
    """Every message text of the shared datasets and VADER's ground truth, once each."""
    texts: dict[str, None] = {}
    for name in ("tweets", "movieReviewSnippets", "amazonReviewSnippets", "nytEditorialSnippets"):
        texts.update((text, None) for text, _ in data.vader_ground_truth(name))
    for turns in data.topical_chat():
        texts.update((turn["message"], None) for turn in turns)
    for pairs, _, _ in data.eurtad():
        texts.update((text, None) for pair in pairs for text in pair)
    for chosen, rejected in data.hh_rlhf():
        texts.update((message["content"], None) for message in chosen + rejected)
    return list(texts)


def sentiment_identity() -> None:
    """Our VADER path against the library's own ``polarity_scores``, on every dataset text."""
    vader = SentimentAnalyzer()
    texts = _dataset_texts()
    # The library's own analyzer: ``Vader.polarity_scores`` would run Vader's negation and
    # idiom rules, the very ones compared.
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    library = SentimentIntensityAnalyzer().polarity_scores
    differ = [text for text in texts if vader._vader.compound(text) != library(text)["compound"]]
    for text in differ[:5]:
        print(f"  differs: {text[:100]!r}")
    report(
        "sentiment, texts scored unlike vaderSentiment",
        len(differ),
        0,
        higher=False,
        dataset="VADER ground truth, Topical-Chat, EURTAD, HH-RLHF (all messages)",
        rows=len(texts),
    )


def sentiment(analysis: Analysis) -> None:
    vader = SentimentAnalyzer()
    for name, target in (
        ("tweets", 0.80),
        ("movieReviewSnippets", None),
        ("amazonReviewSnippets", None),
        ("nytEditorialSnippets", None),
    ):
        rows = data.vader_ground_truth(name)
        ours = [vader.polarity(text) for text, _ in rows]
        report(
            f"sentiment Spearman, VADER {name}",
            spearman(ours, [r for _, r in rows]),
            target,
            dataset=f"vaderSentiment sdist {name}_GroundTruth",
            rows=len(rows),
        )
    negative = {"Sad", "Disgusted", "Angry", "Fearful"}
    pos: list[float] = []
    neg: list[float] = []
    for turns in data.topical_chat():
        for turn in turns:
            score = -vader.polarity(turn["message"])
            (pos if turn["sentiment"] in negative else neg).append(score)
    report(
        "negative-sentiment AUROC (self-labelled turns)",
        auroc(pos, neg),
        None,
        dataset="Topical-Chat valid+test freq",
        rows=len(pos) + len(neg),
        positives=len(pos),
    )


def _signals(
    analysis: Analysis, roles_texts: list[tuple[str, str]], cid: str
) -> list[dict[str, Any]]:
    turns = tuple(Turn(role=r, text=t) for r, t in roles_texts)  # type: ignore[arg-type]
    return analysis.run(Conversation(id=cid, turns=turns))["turns"]


def dissatisfaction(analysis: Analysis) -> None:
    pos: list[float] = []
    neg: list[float] = []
    dialogs = 0
    for pairs, positive, ignored in data.eurtad():
        dialogs += 1
        messages: list[tuple[str, str]] = []
        for user, system in pairs:
            messages += [("user", user), ("assistant", system)]
        signals = _signals(analysis, messages, f"eurtad-{dialogs}")
        for i in range(len(pairs)):
            if i in ignored:
                continue
            (pos if i in positive else neg).append(signals[2 * i]["frustration"])
    precision, recall = precision_recall(pos, neg, 0.5)
    report(
        "dissatisfaction AUROC (user reacts to error)",
        auroc(pos, neg),
        0.85,
        dataset="EURTAD filtered dialogs",
        dialogs=dialogs,
        turns=len(pos) + len(neg),
        positives=len(pos),
    )
    report("  precision at frustration ≥ 0.5", precision, None, dataset="EURTAD")
    report("  recall at frustration ≥ 0.5", recall, None, dataset="EURTAD")
    # Not a target: Topical-Chat's turn rating is the partner's silent judgement of a message's
    # quality, and the partner's next message does not show it. Of 22,233 rated turns 296
    # (1.3%) are Not Good/Poor; the reply to them is no more negative (VADER AUROC 0.52) and
    # holds complaint or correction cues no more often (5.4% against 6.3%) than the reply to
    # the others. A detector of dissatisfaction in the user's words is at chance here by
    # design; the figure is printed to show that, not to be tuned to.
    pos, neg = [], []
    conversations = 0
    for turns in data.topical_chat():
        conversations += 1
        # The partner rates a message and writes the next one: score that reply.
        for flip in ("agent_1", "agent_2"):
            roles = [("user" if t["agent"] == flip else "assistant", t["message"]) for t in turns]
            signals = _signals(analysis, roles, f"tc-{conversations}-{flip}")
            for i in range(len(turns) - 1):
                if turns[i + 1]["agent"] != flip or not turns[i].get("turn_rating"):
                    continue
                bad = turns[i]["turn_rating"] in ("Not Good", "Poor")
                (pos if bad else neg).append(signals[i + 1]["frustration"])
    report(
        "dissatisfaction AUROC (reply to a Not Good/Poor turn)",
        auroc(pos, neg),
        None,
        dataset="Topical-Chat valid+test freq",
        conversations=conversations,
        turns=len(pos) + len(neg),
        positives=len(pos),
    )


def _last_turn(analysis: Analysis, messages: list[dict[str, str]]) -> dict[str, Any]:
    [conversation] = conversations_from({"messages": messages})
    return analysis.run(conversation)["turns"][-1]


def refusal(analysis: Analysis) -> None:
    """Refusal against labelled replies; HH-RLHF pairs only as a secondary harm figure."""
    for name, rows in data.refusal_labels().items():
        scores: dict[str, list[float]] = {"refusal": [], "partial": [], "compliance": []}
        for label, messages in rows:
            scores[label].append(_last_turn(analysis, messages).get("refusal", 0.0))
        refused, complied = scores["refusal"], scores["compliance"]
        precision, recall = precision_recall(refused, complied, 0.5)
        about = {
            "dataset": f"bench/labels refusal {name}",
            "refusals": len(refused),
            "compliances": len(complied),
        }
        report(
            f"refusal AUROC, {name} (refusal vs compliance)",
            auroc(refused, complied),
            0.92,
            **about,
        )
        report(f"  precision at refusal ≥ 0.5, {name}", precision, None, **about)
        report(f"  recall at refusal ≥ 0.5, {name}", recall, None, **about)
        if scores["partial"]:
            report(
                f"  AUROC, {name} (refusal or partial vs compliance)",
                auroc(refused + scores["partial"], complied),
                None,
                partials=len(scores["partial"]),
                **about,
            )
    chosen: list[float] = []
    rejected: list[float] = []
    toxic: tuple[list[float], list[float]] = ([], [])
    for good, bad in data.hh_rlhf():
        for side, (messages, scores_) in enumerate(((good, chosen), (bad, rejected))):
            last = _last_turn(analysis, messages)
            scores_.append(last.get("refusal", 0.0))
            if "toxicity" in last:
                toxic[side].append(-last["toxicity"])  # safer: less toxic
    # Not a refusal measure: the pairs label which reply is less harmful, and most of the
    # less harmful replies do not refuse. Kept as a coarse harm-avoidance figure.
    report(
        "harm pairs: P(chosen refuses more than rejected)",
        auroc(chosen, rejected),
        None,
        dataset="HH-RLHF harmless-base test",
        pairs=len(chosen),
    )
    if toxic[0]:
        report(
            "harm pairs: P(chosen less toxic than rejected)",
            auroc(*toxic),
            None,
            dataset="HH-RLHF harmless-base test",
            pairs=len(toxic[0]),
        )


def toxicity(analysis: Analysis) -> None:
    """Toxicity (the extra) against labelled user and assistant turns."""
    if "toxicity" not in analysis.versions:
        print("toxicity: skipped, the extra is not installed (pip install 'opsloom[toxicity]')")
        return
    from profanity_check import predict_prob

    for name, rows in data.toxicity_labels().items():
        ours: tuple[list[float], list[float]] = ([], [])
        model: tuple[list[float], list[float]] = ([], [])
        baseline = predict_prob([text for _, _, text in rows])
        for (label, role, text), alone in zip(rows, baseline, strict=True):
            messages = [{"role": role, "content": text}]
            if role == "assistant":
                messages.insert(0, {"role": "user", "content": "Hello."})
            value = _last_turn(analysis, messages)["toxicity"]
            ours[label != "toxic"].append(value)
            model[label != "toxic"].append(float(alone))
        about = {
            "dataset": f"bench/labels toxicity {name}",
            "toxic": len(ours[0]),
            "not_toxic": len(ours[1]),
        }
        report(f"toxicity AUROC, {name}", auroc(*ours), 0.90, **about)
        precision, recall = precision_recall(*ours, 0.7)
        report(f"  precision at toxicity ≥ 0.7, {name}", precision, None, **about)
        report(f"  recall at toxicity ≥ 0.7, {name}", recall, None, **about)
        report(f"  profanity-check model alone, AUROC, {name}", auroc(*model), None, **about)


def relevance(analysis: Analysis) -> None:
    """Reply relevance (the embeddings extra): real replies vs others, ignored questions."""
    if "relevance" not in analysis.versions:
        print("relevance: skipped, the extra is not installed (pip install 'opsloom[embeddings]')")
        return
    analysis = Analysis.discover(only={"relevance"})  # the other analyzers add nothing here
    rng = random.Random(11)
    conversations = [
        [t["message"] for t in turns if t.get("message")] for turns in data.topical_chat()
    ]
    real: list[float] = []
    other: list[float] = []
    for n, messages in enumerate(conversations):
        for i in range(0, len(messages) - 1, 4):
            stranger = conversations[
                (n + rng.randrange(1, len(conversations))) % len(conversations)
            ]
            for reply, scores in ((messages[i + 1], real), (rng.choice(stranger), other)):
                pair = [
                    {"role": "user", "content": messages[i]},
                    {"role": "assistant", "content": reply},
                ]
                scores.append(_last_turn(analysis, pair).get("relevance", 0.0))
    report(
        "relevance AUROC, the real reply vs a reply from another conversation",
        auroc(real, other),
        None,
        dataset="Topical-Chat valid+test freq",
        pairs=len(real),
    )
    answered: list[float] = []
    ignored: list[float] = []
    for user, system, was_ignored in data.eurtad_ignored():
        pair = [{"role": "user", "content": user}, {"role": "assistant", "content": system}]
        value = -_last_turn(analysis, pair).get("relevance", 0.0)
        (ignored if was_ignored else answered).append(value)
    report(
        "relevance AUROC, replies that ignored the question score lower",
        auroc(ignored, answered),
        None,
        dataset="EURTAD filtered dialogs (E1/E2 vs the rest)",
        ignored=len(ignored),
        others=len(answered),
    )


def pii() -> None:
    rows = data.pii_fixtures()
    kinds: dict[str, list[int]] = {}  # kind -> [tp, fp, fn]
    for text, expected in rows:
        found = {f.kind for f in find(text)}
        for kind in expected | found:
            counts = kinds.setdefault(kind, [0, 0, 0])
            if kind in expected and kind in found:
                counts[0] += 1
            elif kind in found:
                counts[1] += 1
            else:
                counts[2] += 1
    groups = {
        "checksum types (card, iban, ssn)": {"card", "iban", "ssn"},
        "email and phone": {"email", "phone"},
        "secrets (API keys)": SECRET_KINDS,
    }
    for label, members in groups.items():
        tp = sum(kinds.get(k, [0, 0, 0])[0] for k in members)
        fp = sum(kinds.get(k, [0, 0, 0])[1] for k in members)
        fn = sum(kinds.get(k, [0, 0, 0])[2] for k in members)
        target = 0.95 if "checksum" in label else None
        about = {
            "dataset": "generated fixtures (seed 7)",
            "rows": len(rows),
            "tp": tp,
            "fp": fp,
            "fn": fn,
        }
        report(f"PII precision, {label}", tp / (tp + fp) if tp + fp else 0.0, target, **about)
        report(f"PII recall, {label}", tp / (tp + fn) if tp + fn else 0.0, target, **about)


def speed(analysis: Analysis, count: int, rounds: int = 5) -> None:
    rng = random.Random(3)
    payloads = [data.six_message_conversation(n, rng) for n in range(count)]
    conversations = [conversations_from(p)[0] for p in payloads]
    for conversation in conversations[:200]:
        analysis.run(conversation)  # warm caches (regexes, VADER)
    # CPU time of equal rounds: the best shows what a core does undisturbed (the machine may
    # be shared), the median what it did here.
    size = count // rounds
    rates = []
    for r in range(rounds):
        started = time.process_time()
        for conversation in conversations[r * size : (r + 1) * size]:
            analysis.run(conversation)
        rates.append(size / (time.process_time() - started))
    rates.sort()
    load = round(os.getloadavg()[0], 2)
    about = {"conversations": size * rounds, "rounds": rounds, "load_average": load}
    import opsloom

    about["code"] = str(Path(opsloom.__file__).parents[1])
    report("speed, six-message conversations / CPU-s (best)", rates[-1], 1000.0, **about)
    report("speed, six-message conversations / CPU-s (median)", rates[rounds // 2], None, **about)


def memory(analysis: Analysis, count: int) -> None:
    rng = random.Random(5)
    process = psutil.Process()
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as file:
        for n in range(count):
            file.write(json.dumps(data.six_message_conversation(n, rng)).encode() + b"\n")
        path = file.name
    checkpoints: dict[int, float] = {}
    try:
        with open(path, "rb") as stream:
            for n, conversation in enumerate(read_stream(stream), start=1):
                analysis.run(conversation)
                if n in (count // 10, count):
                    gc.collect()
                    checkpoints[n] = process.memory_info().rss / 2**20
    finally:
        os.unlink(path)
    first, last = checkpoints[count // 10], checkpoints[count]
    report(
        f"memory growth, RSS MiB from {count // 10:,} to {count:,} conversations",
        last - first,
        5.0,
        higher=False,
        rss_mib_at_10pct=round(first, 1),
        rss_mib_at_end=round(last, 1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--section",
        default="sentiment,sentiment-identity,dissatisfaction,refusal,toxicity,relevance,pii,speed,"
        "memory",
    )
    parser.add_argument("--speed-conversations", type=int, default=20_000)
    parser.add_argument("--memory-conversations", type=int, default=100_000)
    args = parser.parse_args()
    sections = set(args.section.split(","))
    analysis = Analysis.discover()
    print(
        f"analyzers: {', '.join(analysis.versions)}; skipped: "
        f"{', '.join(f'{s.name} ({s.reason})' for s in analysis.skipped) or 'none'}"
    )
    if "sentiment" in sections:
        sentiment(analysis)
    if "sentiment-identity" in sections:
        sentiment_identity()
    if "dissatisfaction" in sections:
        dissatisfaction(analysis)
    if "refusal" in sections:
        refusal(analysis)
    if "toxicity" in sections:
        toxicity(analysis)
    if "relevance" in sections:
        relevance(analysis)
    if "pii" in sections:
        pii()
    # Speed and memory are those of the offline default: the extras are not installed there.
    default = Analysis.discover(exclude={"toxicity", "relevance"})
    if "speed" in sections:
        speed(default, args.speed_conversations)
    if "memory" in sections:
        memory(default, args.memory_conversations)
    for figure in FIGURES:
        print(json.dumps(figure))


if __name__ == "__main__":
    main()
