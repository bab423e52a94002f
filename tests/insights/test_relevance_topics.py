"""Reply relevance and topic clusters (the embeddings extra, part of the dev install)."""

from __future__ import annotations

import json
from pathlib import Path

from analysis_run import Run
from test_insights_cli import opsloom, write_jsonl

from opsloom.insights import Conversation, Turn
from opsloom.insights.topic import topic_clusters


def test_relevance__an_answer_on_topic_beats_one_about_something_else(run: Run) -> None:
    question = "How do I rotate the TLS certificate on the ingress controller?"
    on_topic = run(
        ("user", question),
        (
            "assistant",
            "Renew the certificate, update the TLS secret the ingress uses, then "
            "restart the ingress controller pods so they load the rotated certificate.",
        ),
    )
    off_topic = run(
        ("user", question),
        (
            "assistant",
            "Our office is closed on public holidays; lunch is served at noon in "
            "the cafeteria on the second floor.",
        ),
    )
    assert on_topic["turns"][1]["relevance"] > 0.5
    assert off_topic["turns"][1]["relevance"] < 0.15
    assert "off_topic_reply" in {f["code"] for f in off_topic["flags"]}
    assert "off_topic_reply" not in {f["code"] for f in on_topic["flags"]}
    assert on_topic["scores"]["relevance"]["method"] == "hashed-char-ngrams"
    assert on_topic["scores"]["relevance"]["value"] > off_topic["scores"]["relevance"]["value"]


def test_relevance__word_forms_count_as_the_same_topic(run: Run) -> None:
    result = run(
        ("user", "Why did the deployment fail?"),
        ("assistant", "It failed because deploying needs the registry credentials."),
    )
    assert result["turns"][1]["relevance"] >= 0.3


SUBJECTS = {
    "refund": "I was charged twice on my invoice and want a refund of the duplicate payment",
    "login": "I cannot log in, the password reset email never arrives and my account is locked",
    "shipping": "My parcel delivery is late, the courier tracking number shows no shipping update",
}


def conversations() -> list[Conversation]:
    made = []
    for subject, text in SUBJECTS.items():
        words = text.split()
        for n in range(6):
            # Each conversation words it a little differently (drops one word, adds a number).
            varied = " ".join(w for i, w in enumerate(words) if i != n) + f" order {n}"
            made.append(
                Conversation(
                    id=f"{subject}-{n}",
                    turns=(Turn(role="user", text=varied), Turn(role="assistant", text="ok")),
                )
            )
    return made


def test_topics__conversations_about_three_subjects_form_three_clusters() -> None:
    found = topic_clusters(conversations(), clusters=3)
    assert found["conversations"] == 18
    groups = [{name.split("-")[0] for name in c["examples"]} for c in found["clusters"]]
    assert sorted(c["size"] for c in found["clusters"]) == [6, 6, 6]
    assert all(len(g) == 1 for g in groups)  # each cluster holds one subject only
    words = {w for c in found["clusters"] for w in c["words"]}
    assert {"refund", "password", "courier"} <= words


def test_topics__too_few_conversations_are_left_unclustered() -> None:
    [one] = conversations()[:1]
    assert topic_clusters([one]) == {"conversations": 1, "clusters": [], "unclustered": 1}


def test_topics_cli__json_clusters_from_a_file(tmp_path: Path) -> None:
    records = [
        {"id": c.id, "messages": [{"role": "user", "content": c.turns[0].text}]}
        for c in conversations()
    ]
    file = write_jsonl(tmp_path / "chats.jsonl", *records)
    done = opsloom("insights", "topics", str(file), "--clusters", "3", "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert [c["size"] for c in found["clusters"]] == [6, 6, 6]
    bad = opsloom("insights", "topics", str(tmp_path / "missing.jsonl"))
    assert bad.returncode == 2 and "no such file" in bad.stderr
