"""Run the opsloom benchmark suite and print its figures (``make bench``, ``make bench-peers``).

    .venv/bin/python bench/run.py [--workload W1,W3] [--scale 0.1] [--synchronous NORMAL]
                                  [--peers] [--json-only]

Each workload runs in its own process (``bench/workloads.py``) on a fresh SQLite database, so
memory and imports never leak from one workload into the next. The suite prints a table of the
figures next to their targets, then one JSON line per measured workload. With ``--peers`` the
same workloads also run on DBOS (``bench/peers/``, in its own virtual environment) and a second
table shows the opsloom/DBOS ratios.

The exit status is 1 when a workload failed or ran out of time, else 0: a target that is not
met is a finding to read in the table, not a failure of the suite.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from report import Record, peers_table, results_table
from rich.console import Console
from rich.markup import escape

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
WORKLOADS = ("W1", "W2", "W3", "W4")
LEVELS = ("FULL", "NORMAL")

#: Backstops (seconds) on top of each workload's own hard cap: only a wedged process meets them.
BACKSTOP = {"W1": 360.0, "W2": 360.0, "W3": 1_300.0, "W4": 360.0}
PEER_BACKSTOP = 400.0
#: DBOS cannot park 100,000 runs on SQLite in its time budget (see bench/peers/): W3 runs at
#: this scale at most on DBOS, and the comparison uses per-run rates.
DBOS_W3_MAX_SCALE = 0.05


# --- running the workloads -----------------------------------------------------------------


def status(console: Console, message: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}", highlight=False)


def run_json_process(
    command: Sequence[str],
    backstop: float,
    *,
    env: dict[str, str] | None = None,
) -> tuple[list[Record], str | None]:
    """Run a benchmark process; return the JSON lines it printed and an error, if any.

    The child gets its own session so that the backstop also reaches its own children (the W4
    workers, DBOS's workers).
    """
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=backstop)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        error: str | None = f"killed by the {backstop:g}s backstop"
    else:
        error = None if proc.returncode == 0 else f"exit status {proc.returncode}"
    records = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records, error


def run_opsloom(workload: str, scale: float, level: str) -> Record:
    command = [
        sys.executable,
        str(HERE / "workloads.py"),
        "--workload",
        workload,
        "--scale",
        f"{scale:g}",
        "--synchronous",
        level,
    ]
    records, error = run_json_process(command, BACKSTOP[workload])
    record = (
        records[-1]
        if records
        else {"engine": "opsloom", "workload": workload, "synchronous": level, "scale": scale}
    )
    if error and "error" not in record:
        record["error"] = error
    return record


def dbos_scale(workload: str, scale: float | None) -> float | None:
    if workload == "W3":
        return DBOS_W3_MAX_SCALE if scale is None else min(scale, DBOS_W3_MAX_SCALE)
    return scale


def run_dbos(workload: str, scale: float | None) -> Record:
    """One DBOS workload through the peer's runner (it creates its virtual env on first use)."""
    runner = PEERS / "run_dbos.sh"
    if not runner.exists():
        return {"engine": "dbos", "workload": workload, "error": f"{runner} is missing"}
    command = [str(runner)]
    peer_scale = dbos_scale(workload, scale)
    if peer_scale is not None:
        command += ["--scale", f"{peer_scale:g}"]
    env = {**os.environ, "WORKLOADS": workload}
    records, error = run_json_process(command, PEER_BACKSTOP, env=env)
    found = [r for r in records if r.get("engine") == "dbos" and r.get("workload") == workload]
    record = found[-1] if found else {"engine": "dbos", "workload": workload}
    if error and "error" not in record:
        record["error"] = error
    return record


def one_line_summary(record: Record) -> str:
    if record.get("error"):
        return f"[red]failed[/red]: {escape(str(record['error']))}"
    keys = {
        "W1": "steps_per_s",
        "W2": "steps_per_s",
        "W3": "seconds_to_all_complete",
        "W4": "recovery_seconds",
    }
    key = keys.get(str(record.get("workload")), "")
    suffix = " [yellow](timed out)[/yellow]" if record.get("timed_out") else ""
    return f"done: {key} = {record.get(key)}{suffix}"


# --- entry point -------------------------------------------------------------------------


def parse_list(text: str, allowed: Sequence[str], what: str) -> list[str]:
    items = [item.strip().upper() for item in text.split(",") if item.strip()]
    unknown = [item for item in items if item not in allowed]
    if unknown or not items:
        raise argparse.ArgumentTypeError(
            f"{what} must be a comma-separated list of {', '.join(allowed)}"
        )
    return list(dict.fromkeys(items))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workload",
        default=",".join(WORKLOADS),
        type=lambda text: parse_list(text, WORKLOADS, "--workload"),
        help="which workloads, e.g. W1,W3 (default: all)",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=None,
        help="shrink (or grow) every count by this factor (default 1.0)",
    )
    parser.add_argument(
        "--synchronous",
        default="FULL",
        type=lambda text: parse_list(text, LEVELS, "--synchronous"),
        help="SQLite synchronous levels to measure besides the durable default FULL, e.g. NORMAL",
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also run the workloads on DBOS and print opsloom/DBOS ratios",
    )
    parser.add_argument(
        "--json-only", action="store_true", help="print only the JSON lines (one per workload run)"
    )
    args = parser.parse_args(argv)
    if args.scale is not None and args.scale <= 0:
        parser.error("--scale must be positive")
    args.levels = list(dict.fromkeys(["FULL", *args.synchronous]))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    scale = 1.0 if args.scale is None else args.scale
    out = Console(width=None if sys.stdout.isatty() else 130)
    progress = Console(stderr=True)
    load = " ".join(f"{value:.1f}" for value in os.getloadavg())
    records: list[Record] = []
    pairs: list[tuple[Record, Record]] = []
    for workload in args.workload:
        full: Record | None = None
        for level in args.levels:
            status(progress, f"opsloom {workload} (synchronous={level}, scale {scale:g}) …")
            record = run_opsloom(workload, scale, level)
            status(progress, f"opsloom {workload} {one_line_summary(record)}")
            records.append(record)
            if args.json_only:
                print(json.dumps(record), flush=True)
            if level == "FULL":
                full = record
        if args.peers:
            status(progress, f"DBOS {workload} …")
            peer = run_dbos(workload, args.scale)
            status(progress, f"DBOS {workload} {one_line_summary(peer)}")
            if args.json_only:
                print(json.dumps(peer), flush=True)
            records.append(peer)
            if full is not None:
                pairs.append((full, peer))
    if not args.json_only:
        ours = [r for r in records if r.get("engine") == "opsloom"]
        out.print(results_table(ours, scale, load))
        if pairs:
            out.print(peers_table(pairs))
        for record in records:
            print(json.dumps(record), flush=True)
    failed = [r for r in records if r.get("error") or r.get("timed_out")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
