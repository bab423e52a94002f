"""A real Prometheus scrapes ``opsloom up`` and sees what its worker did, through its query API."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import httpx
from peers import (
    LOOPBACK,
    PROMETHEUS,
    binary,
    clean_env,
    free_port,
    launch,
    opsloom,
    render,
    require_binaries,
    start_opsloom,
    wait_ready,
    wait_until,
)

API_TOKEN = "e2e-metrics-token"


def test_prometheus__scrapes_run_counters_and_store_gauges_of_opsloom_up(tmp_path: Path) -> None:
    require_binaries()
    executable = binary(PROMETHEUS)
    assert executable is not None
    db = f"sqlite:///{tmp_path / 'opsloom.db'}"
    env = clean_env(OPSLOOM_API_TOKEN=API_TOKEN, OPSLOOM_LOG_FORMAT="json")
    with ExitStack() as stack:
        server = start_opsloom(tmp_path, db, env)
        stack.callback(server.stop)
        port = free_port()
        config = render(
            "prometheus-opsloom.yml",
            tmp_path / "prometheus.yml",
            OPSLOOM=server.url.removeprefix("http://"),
        )
        prometheus = launch(
            "prometheus",
            [
                executable,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                f"--web.listen-address={LOOPBACK}:{port}",
            ],
            tmp_path,
            f"http://{LOOPBACK}:{port}",
        )
        stack.callback(prometheus.stop)
        wait_ready(prometheus)

        for x in range(3):
            started = opsloom(
                "start",
                "chain",
                "--input",
                str(x),
                "--app",
                "examples.workflows:app",
                "--db",
                db,
                "--json",
                env=env,
            )
            assert started.returncode == 0, started.stderr

        def query(expression: str) -> float | None:
            prometheus.alive()
            server.alive()
            answer = httpx.get(
                f"{prometheus.url}/api/v1/query", params={"query": expression}, timeout=5
            ).json()
            assert answer["status"] == "success", answer
            result = answer["data"]["result"]
            return float(result[0]["value"][1]) if result else None

        def explain() -> str:
            targets = httpx.get(f"{prometheus.url}/api/v1/targets", timeout=5).text
            return f"targets: {targets}\n{server.tail()}\n{prometheus.tail()}"

        completed = 'sum(opsloom_runs_finished_total{workflow="chain",status="completed"})'
        wait_until(
            lambda: query(completed) == 3, "Prometheus to count 3 completed runs", 60, explain
        )
        assert query('opsloom_runs_started_total{workflow="chain"}') == 3
        assert query('opsloom_step_duration_seconds_count{workflow="chain",outcome="completed"}')
        # Store-derived: nothing is left open once the three runs are done.
        assert query('opsloom_runs{status="pending"}') == 0
        assert query("opsloom_store_up") == 1

    # The server logged one JSON object per lifecycle change of each run.
    logged = [
        json.loads(line)
        for line in server.log.read_text(encoding="utf-8").splitlines()
        if line.startswith("{")
    ]
    finished = [line for line in logged if line.get("event") == "run_completed"]
    assert len(finished) == 3, server.tail()
    assert {line["workflow"] for line in finished} == {"chain"}
    assert all(len(line["trace_id"]) == 32 and line["run_id"] for line in finished)
