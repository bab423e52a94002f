"""Shared fixtures: a fresh database per test, apps with a fake clock.

``--store sqlite|postgresql|all`` picks the dialects that tests using ``db_url`` (and the
store contract suite) run against. PostgreSQL tests each get a fresh schema in the database
named by ``OPSLOOM_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``),
dropped afterwards.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, settings

from opsloom import App, FakeClock, WorkerOptions

# Property tests judge the code, not the machine: a loaded machine (CI shares its cores) must
# not fail them for slow input generation or a slow example.
settings.register_profile("opsloom", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("opsloom")

DIALECTS = ("sqlite", "postgresql")
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(autouse=True)
def secret_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test seals connection secrets and audit entries with a fresh key, so no key file
    is made in the work tree (tests of the key file unset it)."""
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("OPSLOOM_SECRET_KEY", key)
    return key


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store",
        choices=["sqlite", "postgresql", "all"],
        default="all",
        help="store dialect(s) to run the store and engine suites against (default: all)",
    )


def selected_dialects(config: pytest.Config) -> list[str]:
    """The dialects chosen with ``--store``."""
    choice = config.getoption("--store")
    return list(DIALECTS) if choice == "all" else [choice]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_url" in metafunc.fixturenames:
        metafunc.parametrize("db_url", selected_dialects(metafunc.config), indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests of PostgreSQL specifics follow --store too.
    if "postgresql" in selected_dialects(config):
        return
    kept = [item for item in items if "postgres_schemas" not in getattr(item, "fixturenames", ())]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


def postgres_server_url() -> str:
    return os.environ.get("OPSLOOM_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


@functools.cache
def _postgres_problem(url: str) -> str | None:
    """Why the test server cannot be reached (checked once per session), or None."""
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        return f"PostgreSQL at {url} is unreachable: {exc}"
    return None


def require_postgres() -> str:
    """The test server's URL. Without it the test fails on CI (CI=true); elsewhere it skips."""
    url = postgres_server_url()
    problem = _postgres_problem(url)
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem)
        pytest.skip(problem + " (set OPSLOOM_TEST_POSTGRES_URL; on CI this fails)")
    return url


def drop_schema(server_url: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def postgres_schemas() -> Iterator[Callable[[], str]]:
    """Make store URLs naming fresh schemas (created by the store, dropped afterwards)."""
    server = require_postgres()
    made: list[str] = []

    def make() -> str:
        schema = f"opsloom_test_{uuid.uuid4().hex[:12]}"
        made.append(schema)
        separator = "&" if "?" in server else "?"
        return f"{server}{separator}schema={schema}"

    try:
        yield make
    finally:
        for schema in made:
            drop_schema(server, schema)


@pytest.fixture
def postgres_schema_url(postgres_schemas: Callable[[], str]) -> str:
    """A store URL naming a fresh schema of the test PostgreSQL database."""
    return postgres_schemas()


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    dialect = getattr(request, "param", "sqlite")
    if dialect == "sqlite":
        return f"sqlite:///{tmp_path / 'opsloom.db'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_app(db_url: str) -> Callable[..., App]:
    """Build an App on the test database; tests register workflows, then open it."""

    def build(
        *, clock: FakeClock | None = None, worker: WorkerOptions | None = None, client: bool = False
    ) -> App:
        options = (
            None
            if client
            else (
                worker
                or WorkerOptions(
                    concurrency=64, poll_seconds=0.05, reap_seconds=0.1, grace_seconds=5
                )
            )
        )
        return App(db_url, worker=options, clock=clock)

    return build


@pytest.fixture
async def app(make_app: Callable[..., App]) -> AsyncIterator[App]:
    """An unopened App; the test registers workflows and uses ``async with app``."""
    yield make_app()
