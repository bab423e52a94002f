"""``opsloom insights analyze``: the real command as a subprocess, and stored events."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from payloads import OPENAI_TOOLS, langfuse_trace, otel_genai


def opsloom(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOM_")}
    return subprocess.run(
        [sys.executable, "-m", "opsloom.cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def write_jsonl(path: Path, *records: object) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


ANGRY = {
    "id": "angry-1",
    "messages": [
        {"role": "user", "content": "My invoice is wrong."},
        {"role": "assistant", "content": "I'm sorry, but I can't help with billing."},
        {"role": "user", "content": "This is useless. Let me talk to a human!"},
    ],
}


def test_analyze__jsonl_of_mixed_formats_one_json_line_each(tmp_path: Path) -> None:
    file = write_jsonl(
        tmp_path / "chats.jsonl",
        OPENAI_TOOLS,
        otel_genai(),
        langfuse_trace("t1", "s-1", "Why two charges?", "One is a hold.", 1),
        ANGRY,
    )
    done = opsloom("insights", "analyze", str(file), "--json")
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["conversation"]["id"] for r in results] == [
        "conv-weather-1",
        "ops-chat-7",
        "s-1",
        "angry-1",
    ]
    assert all(r["version"] == "1" for r in results)
    assert results[3]["attention"]["needed"]
    assert "human_requested" in results[3]["attention"]["reasons"]
    assert "tool_error" in {f["code"] for f in results[0]["flags"]}


def test_analyze__format_forced_and_human_summary(tmp_path: Path) -> None:
    file = write_jsonl(tmp_path / "c.jsonl", ANGRY)
    done = opsloom("insights", "analyze", str(file), "--format", "openai")
    assert done.returncode == 0, done.stderr
    assert "ATTENTION high angry-1" in done.stdout
    wrong = opsloom("insights", "analyze", str(file), "--format", "otel")
    assert wrong.returncode == 2
    assert "c.jsonl:1" in wrong.stderr


def test_analyze__bad_line_named_and_exit_2(tmp_path: Path) -> None:
    file = tmp_path / "bad.jsonl"
    file.write_text(json.dumps(ANGRY) + "\n{not json\n")
    done = opsloom("insights", "analyze", str(file), "--json")
    assert done.returncode == 2
    assert "bad.jsonl:2" in done.stderr
    assert "invalid JSON" in done.stderr
    assert opsloom("insights", "analyze", str(tmp_path / "missing.jsonl")).returncode == 2


def test_analyze__stdin(tmp_path: Path) -> None:
    done = opsloom("insights", "analyze", "-", "--json", stdin=json.dumps(ANGRY) + "\n")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["conversation"]["id"] == "angry-1"


def test_analyze__store_writes_events_once(tmp_path: Path) -> None:
    file = write_jsonl(tmp_path / "c.jsonl", ANGRY, OPENAI_TOOLS)
    db = f"sqlite:///{tmp_path / 'ins.db'}"
    runs = []
    for _ in range(2):  # the second run finds every event stored already
        done = opsloom("insights", "analyze", str(file), "--store", "--db", db, "--json")
        assert done.returncode == 0, done.stderr
        runs.append([json.loads(line) for line in done.stdout.splitlines()])
    assert runs[0] == runs[1]
    with sqlite3.connect(tmp_path / "ins.db") as conn:
        rows = conn.execute("SELECT type, subject FROM events ORDER BY seq").fetchall()
    types = [t for t, _ in rows]
    assert types.count("io.opsloom.conversation.analyzed.v1") == 2
    attention = [s for t, s in rows if t == "io.opsloom.conversation.attention.v1"]
    expected = [r["conversation"]["id"] for r in runs[0] for _ in r["attention"]["reasons"]]
    assert sorted(attention) == sorted(expected)
    assert "angry-1" in attention


def test_batch__durable_run_resumed_by_the_same_command(tmp_path: Path) -> None:
    file = write_jsonl(tmp_path / "c.jsonl", ANGRY, OPENAI_TOOLS)
    db = f"sqlite:///{tmp_path / 'b.db'}"
    first = opsloom("insights", "batch", str(file), "--db", db, "--json")
    assert first.returncode == 0, first.stderr
    totals = json.loads(first.stdout)
    assert totals["conversations"] == 2
    assert totals["run_id"].startswith("insights-")
    second = opsloom("insights", "batch", str(file), "--db", db, "--json")
    assert json.loads(second.stdout) == totals  # the same run, not a new analysis
