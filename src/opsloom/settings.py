"""Typed settings read from the environment (``OPSLOOM_`` prefix); the only env reader."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Process-wide configuration.

    Attributes:
        database_url: ``sqlite:///opsloom.db`` (default) or another store URL.
        sqlite_synchronous: SQLite's ``synchronous`` level; ``FULL`` loses nothing acknowledged
            on a power cut, ``NORMAL`` may lose the last commits but never corrupts.
        postgres_pool_size: most pooled PostgreSQL connections per process for reads and
            claims; each process also keeps one writer and one LISTEN connection.
        worker_concurrency: runs a worker executes at once (``--concurrency``).
        worker_poll_seconds: longest an idle worker waits before looking for work nobody told
            it about (default: 0.25 s on SQLite, 2 s on PostgreSQL, which tells workers).
        lease_seconds: how long a worker's claim on a run lasts without a heartbeat; a run
            whose worker died is taken over this long after its last heartbeat.
        worker_keep_parked: parked runs whose live execution a worker keeps in memory, so that
            a run waking from a signal, an event, a timer or a child run on the same worker
            goes on from where it waited instead of being replayed from its start (the least
            recently parked is dropped first; 0: always replay).
        api_host / api_port: where ``opsloom up`` serves its HTTP API.
        api_token: an extra bearer token that acts as an admin (bootstrap and automation); the
            API always requires a token (see :mod:`opsloom.api.auth`).
        intake_max_pending: events waiting to be stored beyond which intake answers 503.
        secrets_file: a YAML or JSON mapping of secret names to values, what workflow
            documents see as ``$secrets`` (each document only those it declares in
            ``use.secrets``).
        decisions_dir: a folder of decision tables (``*.yaml``) that ``decide:1.0.0`` and
            approval policies of documents use.
        log_level: the log level of ``opsloom up`` and ``opsloom worker``.
        slack_signing_secret: verifies Slack's interactive callbacks (none: Slack is off).
        approval_link_secret: signs one-time approval links for e-mail (none: links are off).
        approval_notices_file: a YAML or JSON file saying how approvers are told of what
            waits for them (Slack, e-mail, Teams; see ``docs/howto/approvals.md``); none:
            nobody is told.
        run_processes: which documents may start local processes (``run: shell``, ``script``,
            ``container``): ``none``; ``registered`` (default: documents registered by the
            operator's own code or files, not those deployed over the API or the CLI); ``all``.
            Deploying a document that may run processes is running code on the worker.
        process_commands: when set, the only programs processes may start: the first word of
            a shell command, a script's language or a container's image.
        process_user: run processes as this uid (the worker must be allowed to switch).
        max_body_bytes: the largest request body the HTTP API reads (every route, checked
            before authentication); larger ones are answered 413.
        egress_allow / egress_deny: hosts (``*`` wildcards) or IP networks (CIDR) that the
            outbound calls of documents may / may not reach, redirects included.
        secret_key: the Fernet key that encrypts connection secrets at rest; without it,
            ``secret_key_file`` holds one (created with mode 0600 on first use).
        secret_key_file: where the connection secret key is kept when ``secret_key`` is unset.
        connectors_dir: where ``opsloom connectors import`` keeps imported OpenAPI connectors.
        hooks_file: a YAML or JSON file of webhook source settings; the
            ``OPSLOOM_HOOKS_<SOURCE>_*`` variables, derived from the installed sources, win
            over it (see :mod:`opsloom.triggers.sources.config`).
        examples: ``opsloom up`` also registers the documents of ``./examples`` (the bundled
            example app does so by itself).
        web_session_secret: signs the web UI's session cookies; set the same value on every
            API process behind one address (none: a random key per process, so sessions end
            when it restarts).
        web_session_hours: how long a web UI sign-in lasts.
        server: the URL of a running opsloom whose API the run commands of the CLI use
            instead of the database (``--server``).
        token: the API token the CLI sends to ``server`` (``--token``).
        log_level / log_format: what ``opsloom up`` and ``opsloom worker`` log, as ``text``
            or ``json`` (one object per line).
        otlp_endpoint: an OTLP/HTTP collector (``http://host:4318``) that receives the traces
            of runs, steps and outbound calls; none: no traces are recorded.
        retention_days: finished runs (with their history) and events older than this many
            days are pruned in the background by one worker process; analytics keep their
            rollups. None (default): everything is kept.
        anomaly_events: one worker process looks for anomalies every minute (runs of the last
            four hours in five-minute buckets) and stores each as an
            ``io.opsloom.anomaly.detected.v1`` CloudEvent, which triggers can match.
        quarantine_after: a run whose worker vanished (crashed, was killed) this many times
            while executing it is quarantined: no worker claims it until ``opsloom runs
            requeue``. 0: never.
        watchdog: one worker process looks every minute for runs stuck far beyond their
            workflow's usual duration and for newly quarantined runs, and reports each once
            (a log line, an audit entry and an ``io.opsloom.run.stuck.v1`` or
            ``io.opsloom.run.quarantined.v1`` CloudEvent).
        adaptive: apply the retry and step timeout recommendations of ``opsloom analytics
            recommend`` to new step attempts (more attempts for steps that succeed on a later
            one, one attempt for steps whose retries never help, a longer timeout for steps
            that fail on theirs: never a shorter one, never one for a step without), refreshed
            every five minutes from the last six hours; each change is logged and audited.
            Off: every step's own policy.
        adaptive_settle_runs: a longer timeout or more attempts set by the adaptive mode stay
            after their recommendation has gone until a whole window ran under them with at
            least this many steps, none of which would have failed under the step's own policy.
    """

    model_config = SettingsConfigDict(env_prefix="OPSLOOM_", extra="ignore")

    database_url: str = "sqlite:///opsloom.db"
    sqlite_synchronous: str = Field(default="FULL", pattern="^(?i)(FULL|NORMAL|EXTRA|OFF)$")
    postgres_pool_size: int = Field(default=8, ge=1, le=1000)
    worker_concurrency: int = Field(default=256, ge=1)
    worker_poll_seconds: float | None = Field(default=None, gt=0)
    worker_keep_parked: int = Field(default=256, ge=0)
    intake_max_pending: int = Field(default=10_000, ge=1)
    secrets_file: Path | None = None
    decisions_dir: Path | None = None
    slack_signing_secret: SecretStr | None = None
    approval_link_secret: SecretStr | None = None
    approval_notices_file: Path | None = None
    run_processes: Literal["none", "registered", "all"] = "registered"
    process_commands: list[str] = Field(default_factory=list)
    process_user: int | None = Field(default=None, ge=0)
    max_body_bytes: int = Field(default=1 << 20, ge=1)
    egress_allow: list[str] = Field(default_factory=list)
    egress_deny: list[str] = Field(default_factory=list)
    secret_key: SecretStr | None = None
    secret_key_file: Path = Path("opsloom.key")
    connectors_dir: Path = Path("opsloom-connectors")
    lease_seconds: float = Field(default=30.0, gt=0)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)
    api_token: str | None = None
    log_level: str = "INFO"
    hooks_file: Path | None = None
    examples: bool = False
    web_session_secret: SecretStr | None = None
    web_session_hours: float = Field(default=12.0, gt=0)
    server: str | None = None
    token: SecretStr | None = None
    log_format: str = Field(default="text", pattern="^(text|json)$")
    otlp_endpoint: str | None = None
    retention_days: float | None = Field(default=None, gt=0)
    anomaly_events: bool = False
    quarantine_after: int = Field(default=5, ge=0)
    watchdog: bool = True
    adaptive: bool = False
    adaptive_settle_runs: int = Field(default=20, ge=1)


def load_settings() -> Settings:
    """Read the settings now (never at import time)."""
    return Settings()


def read_settings_file(path: Path, what: str) -> dict[str, Any]:
    """The mapping in a settings file (YAML, or JSON by its suffix; empty: ``{}``).

    Raises:
        ConfigurationError: the file cannot be read, is not valid or holds no mapping; the
            message names ``what`` (``webhook settings``) and the file.
    """
    from opsloom.errors import ConfigurationError

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read the {what} file {path}: {exc}") from None
    try:
        if path.suffix.lower() == ".json":
            value = json.loads(text)
        else:
            from ruamel.yaml import YAML
            from ruamel.yaml.error import YAMLError

            try:
                value = YAML(typ="safe", pure=True).load(text)
            except YAMLError as exc:
                raise ValueError(str(exc)) from None
    except ValueError as exc:
        raise ConfigurationError(f"the {what} file {path} is not valid: {exc}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigurationError(f"the {what} file {path} must hold a mapping")
    return value


def environment(prefix: str) -> dict[str, str]:
    """The process's variables whose names start with ``prefix`` (an ``OPSLOOM_`` one).

    For settings whose names are derived from what is installed (webhook sources, generic
    hooks), which a fixed model cannot declare.
    """
    if not prefix.startswith("OPSLOOM_"):
        raise ValueError(f"only OPSLOOM_ variables are settings, not {prefix!r}")
    return {name: value for name, value in os.environ.items() if name.startswith(prefix)}
