"""Entry points: the built-ins come through them, and a broken one is named, never fatal."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import pytest
from pydantic import BaseModel

from opsloom.connectors.registry import ConnectorRegistry, as_connectors
from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector
from opsloom.dsl.catalog import (
    Catalog,
    FunctionCall,
    FunctionSetup,
    as_installer,
    catalog_function,
)
from opsloom.errors import ConfigurationError
from opsloom.extension import CONNECTORS, FUNCTIONS, SOURCES, discover
from opsloom.triggers.sources.config import hook_variables
from opsloom.triggers.sources.registry import as_source, installed_sources, source_reference


async def shout(call: FunctionCall) -> str:
    return str(call.arguments["text"]).upper()


SHOUT = catalog_function("shout", "1.0.0", shout, description="Upper case.")


class QuietConfig(BaseModel):
    """No settings at all."""


class Quiet:
    """A source whose module exists but whose name disagrees with its entry point."""

    name = "quiet"
    config: type[BaseModel] = QuietConfig

    def verify(self, request: Any, config: Any, now: float) -> None: ...

    def normalise(self, request: Any) -> list[Any]:
        return []


class Tools:
    name = "tools"
    actions = {"ping": object()}


def point(name: str, value: str, group: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=group)


def test_builtins__are_installed_through_their_entry_points() -> None:
    sources, errors = installed_sources()
    assert errors == []
    assert sorted(sources) == [
        "alertmanager",
        "datadog",
        "github",
        "grafana",
        "pagerduty",
        "sentry",
    ]
    loaded, errors = discover(FUNCTIONS, as_installer)
    assert errors == []
    assert [item.name for item in loaded] == ["approval", "decide", "http-request", "log", "sleep"]
    assert all(item.distribution and item.distribution.startswith("opsloom ") for item in loaded)


def test_discover__a_module_that_cannot_be_imported_is_named_and_the_rest_loads() -> None:
    here = f"{__name__}:SHOUT"
    loaded, errors = discover(
        FUNCTIONS,
        as_installer,
        [point("broken", "no_such_module_here:thing", FUNCTIONS), point("shout", here, FUNCTIONS)],
    )
    assert [item.name for item in loaded] == ["shout"]
    assert len(errors) == 1
    message = str(errors[0])
    assert "'broken'" in message and "no_such_module_here:thing" in message
    assert FUNCTIONS in message and "ModuleNotFoundError" in message
    catalog = Catalog()
    loaded[0].obj(catalog, FunctionSetup())
    assert catalog.function("shout", "1.0.0").description == "Upper case."


def test_discover__an_object_of_the_wrong_shape_is_named() -> None:
    _, errors = discover(FUNCTIONS, as_installer, [point("odd", f"{__name__}:Tools", FUNCTIONS)])
    assert len(errors) == 1
    assert "'odd'" in str(errors[0]) and "install(catalog, setup)" in str(errors[0])
    assert isinstance(errors[0], ConfigurationError)


def test_sources__name_and_shape_are_checked() -> None:
    _, errors = discover(SOURCES, as_source, [point("loud", f"{__name__}:Quiet", SOURCES)])
    assert "named 'quiet', not 'loud'" in str(errors[0])
    _, errors = discover(SOURCES, as_source, [point("tools", f"{__name__}:Tools", SOURCES)])
    assert "needs config, verify, normalise" in str(errors[0])
    with pytest.raises(ValueError, match="none of"):
        as_source("generic", type("G", (Quiet,), {"name": "generic"}))


class Needy(Quiet):
    """A source whose settings cannot be empty: it would stop a server that has none."""

    name = "needy"

    class config(BaseModel):
        secret: str


class Raising:
    """A connector whose name raises when read."""

    @property
    def name(self) -> str:
        raise RuntimeError("boom")

    actions: dict[str, Any] = {}


def test_sources__a_config_that_needs_settings_is_refused() -> None:
    _, errors = discover(SOURCES, as_source, [point("needy", f"{__name__}:Needy", SOURCES)])
    assert "must be valid with no settings" in str(errors[0])


def test_discover__an_object_that_raises_when_used_is_named() -> None:
    def named(name: str, obj: Any) -> str:
        return str(obj().name)

    _, errors = discover(CONNECTORS, named, [point("r", f"{__name__}:Raising", CONNECTORS)])
    assert "RuntimeError: boom" in str(errors[0]) and "'r'" in str(errors[0])


def test_hook_variables__derived_from_the_sources_config_models() -> None:
    names = {variable.name: variable for variable in hook_variables()}
    assert names["OPSLOOM_HOOKS_GITHUB_SECRET"].kind == "list"
    assert names["OPSLOOM_HOOKS_GRAFANA_REQUIRE_TIMESTAMP"].kind == "text"
    assert names["OPSLOOM_HOOKS_ALERTMANAGER_PASSWORD"].kind == "password"
    assert names["OPSLOOM_HOOKS_DATADOG_TOKEN_HEADER"].source == "datadog"
    assert "OPSLOOM_HOOKS_REPLAY_WINDOW" in names


def test_source_reference__summary_and_variables_per_source() -> None:
    github = next(ref for ref in source_reference() if ref.name == "github")
    assert github.summary == "``/hooks/github``."
    assert [v.name for v in github.variables if v.source == "github"] == [
        "OPSLOOM_HOOKS_GITHUB_SECRET"
    ]


class Ping(BaseModel):
    text: str


TOOLS: Connector[ConnectionSettings] = Connector("tools", ConnectionSettings, title="Tools")


@TOOLS.action
async def ping(ctx: ActionContext[ConnectionSettings], data: Ping) -> Ping:
    return data


OTHER_TOOLS: Connector[ConnectionSettings] = Connector("tools", ConnectionSettings, title="Again")


def test_connectors__one_registry_by_name_and_duplicates_refused() -> None:
    registry = ConnectorRegistry()
    registry.discover([point("tools", f"{__name__}:TOOLS", CONNECTORS)])
    assert registry.errors == []
    assert registry.names == ["tools"] and len(registry) == 1
    found = registry.get("tools")
    assert found is TOOLS and list(found.actions) == ["ping"]
    assert registry.action("tools-ping") is ping
    registry.register(TOOLS)  # the same object again: nothing to do
    with pytest.raises(ConfigurationError, match="two connectors are named 'tools'"):
        registry.register(OTHER_TOOLS)
    registry.discover([point("again", f"{__name__}:OTHER_TOOLS", CONNECTORS)])
    assert "entry point 'again'" in str(registry.errors[0])


def test_connectors__a_bare_object_is_named_and_skipped_not_fatal() -> None:
    registry = ConnectorRegistry()
    registry.discover(
        [
            point("tools", f"{__name__}:Tools", CONNECTORS),
            point("good", f"{__name__}:TOOLS", CONNECTORS),
        ]
    )
    assert registry.names == ["tools"] and registry.get("tools") is TOOLS
    (error,) = registry.errors
    assert "entry point 'tools'" in str(
        error
    ) and "not a Connector of opsloom.connectors.sdk" in str(error)
    with pytest.raises(TypeError):
        as_connectors("q", Quiet())
