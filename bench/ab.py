"""A/B: one benchmark on a base revision's code and on this tree's, interleaved, side by side.

    .venv/bin/python bench/ab.py --base main --rounds 3 --keys accepted_per_s,latency_p99_ms \
        -- bench/webhooks.py --variant events --seconds 10
    .venv/bin/python bench/ab.py --base main --rounds 2 --keys recovery_seconds \
        -- bench/run.py --workload W4 --json-only
    .venv/bin/python bench/ab.py --base HEAD --head-extra=--api-processes=2 \
        --keys accepted_per_s -- bench/webhooks.py --variant events --seconds 10

On a shared machine absolute figures move with the load; a change is only shown by the two
sides measured in the same run, one after the other, several times. The base revision's
``src/`` is exported (``git archive``) into a temporary folder and put first on ``PYTHONPATH``
for the base side (the benchmark scripts themselves are this tree's, so both sides are measured
the same way). Every JSON line the benchmark prints is printed again with ``"side"`` (``base`` or
``head``) and ``"round"`` added, then the median of each ``--keys`` figure per side.
``--head-extra`` adds options to this tree's side only (a new option the base does not know,
or the same code with another setting when ``--base HEAD``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def export(revision: str, folder: Path, side: str = "base") -> Path:
    """The ``src/`` of ``revision``, written under ``folder / side``."""
    archive = folder / f"{side}.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", revision, "src"], cwd=ROOT, stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder / side, filter="data")
    return folder / side / "src"


def run(command: list[str], src: Path) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        sys.stderr.write(f"no JSON from {command} (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return [json.loads(line) for line in lines]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="git revision to compare with")
    parser.add_argument(
        "--head",
        default=None,
        help="git revision measured as the head side (default: this tree's src/ as it is, "
        "so edits made while the benchmark runs are measured too)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keys", default="", help="figures to summarise, comma-separated")
    parser.add_argument(
        "--head-extra", default="", help="options added to the head side's command only"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- script and its options")
    options = parser.parse_args()
    command = [part for part in options.command if part != "--"]
    if not command:
        parser.error("give the benchmark to run after --")
    keys = [key for key in options.keys.split(",") if key]
    figures: dict[str, dict[str, list[float]]] = {"base": {}, "head": {}}
    with tempfile.TemporaryDirectory(prefix="opsloom-ab-") as tmp:
        head = ROOT / "src" if options.head is None else export(options.head, Path(tmp), "head")
        sides = {"base": export(options.base, Path(tmp)), "head": head}
        extra = {"base": [], "head": options.head_extra.split()}
        for number in range(1, options.rounds + 1):
            for side, src in sides.items():
                for record in run(command + extra[side], src):
                    print(json.dumps({"side": side, "round": number, **record}), flush=True)
                    for key in keys:
                        if isinstance(record.get(key), (int, float)):
                            figures[side].setdefault(key, []).append(float(record[key]))
    for key in keys:
        medians = {
            side: statistics.median(values[key]) if values.get(key) else None
            for side, values in figures.items()
        }
        print(f"median {key}: base {medians['base']}  head {medians['head']}  ({options.base})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
