"""Checks a schema cannot express: names that must exist, expressions that must compile.

The JSON Schema says what shape a document has; this module says whether it makes sense:
``then`` targets exist, task names are unique in their list, called functions and referenced
errors, retries, authentications, timeouts and secrets are defined, every jq expression
compiles with the variables in scope, and (when the runtime is described) the features used
are available here. The walk is defensive: it runs on documents that failed the schema too, so
that all problems are reported at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from opsloom.dsl.feature import (
    BUILTIN_CALLS,
    UNSUPPORTED_FEATURES,
    RuntimeFeatures,
    script_language,
)
from opsloom.expr.jqcheck import RUNTIME_VARIABLES, expression_body, jq_problem

FLOW_DIRECTIVES = ("continue", "exit", "end")
#: The key that gives a task its kind; ``do`` last, since ``for`` tasks also have a ``do``.
TASK_KINDS = (
    "call",
    "emit",
    "for",
    "fork",
    "listen",
    "raise",
    "run",
    "set",
    "switch",
    "try",
    "wait",
    "do",
)

_CATALOG_CALL = re.compile(r"^(?P<name>[^:@\s]+):(?P<version>[^@\s]+)@(?P<catalog>\S+)$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_USE = re.compile(r"\$secrets\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*\"([^\"]*)\"\s*\])")

Path = tuple[str | int, ...]
Found = tuple[Path, str]
#: Where in the ``with`` arguments of a call of ``name`` at ``version`` (paths) and what is
#: wrong there.
CatalogCheck = Callable[[str, str, Any], list[tuple[Path, str]]]


class _Checker:
    """One walk over one document; collects ``(path, message)`` findings."""

    def __init__(
        self,
        data: dict[str, Any],
        catalog_has: Callable[[str, str], bool] | None,
        runtime: RuntimeFeatures | None,
        catalog_check: CatalogCheck | None = None,
    ) -> None:
        self.data = data
        self.catalog_has = catalog_has
        self.catalog_check = catalog_check
        self.runtime = runtime
        self.found: list[Found] = []
        use = data.get("use")
        self.use: dict[str, Any] = use if isinstance(use, dict) else {}

    # --- helpers --------------------------------------------------------------------------

    def report(self, path: Path, message: str) -> None:
        if (path, message) not in self.found:
            self.found.append((path, message))

    def declared(self, section: str) -> set[str]:
        value = self.use.get(section)
        if section == "secrets":
            return {s for s in value if isinstance(s, str)} if isinstance(value, list) else set()
        return set(value) if isinstance(value, dict) else set()

    def unsupported(self, path: Path, feature: str, detail: str = "") -> None:
        if self.runtime is None or feature not in UNSUPPORTED_FEATURES:
            return
        self.report(path, f"unsupported by this runtime: {UNSUPPORTED_FEATURES[feature]}{detail}")

    # --- expressions ----------------------------------------------------------------------

    def expression(self, path: Path, value: Any, scope: frozenset[str], *, bare: bool) -> None:
        """Check one expression field; ``bare`` fields are jq even without ``${ }``."""
        if not isinstance(value, str):
            return
        body = expression_body(value)
        if body is None:
            if not bare:
                return
            body = value
        self.jq(path, body, scope)

    def jq(self, path: Path, source: str, scope: frozenset[str]) -> None:
        problem = jq_problem(source, scope)
        if problem is not None:
            self.report(path, f"invalid jq expression: {problem}")
            return
        secrets = self.declared("secrets")
        for match in _SECRET_USE.finditer(source):
            name = match.group(1) or match.group(2)
            if name not in secrets:
                self.report(path, f"secret {name!r} is not declared in use.secrets")

    def strings(
        self, path: Path, value: Any, scope: frozenset[str], skip: tuple[str, ...] = ()
    ) -> None:
        """Check every ``${ … }`` string inside ``value`` (a literal structure)."""
        if isinstance(value, str):
            self.expression(path, value, scope, bare=False)
        elif isinstance(value, dict):
            for key, item in value.items():
                if key not in skip:
                    self.strings((*path, key), item, scope)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.strings((*path, index), item, scope)

    def transform(self, path: Path, value: Any, scope: frozenset[str]) -> None:
        """``input.from``, ``output.as``, ``export.as``: jq when a string, else a template."""
        if isinstance(value, str):
            self.expression(path, value, scope, bare=True)
        else:
            self.strings(path, value, scope)

    # --- the document ---------------------------------------------------------------------

    def run(self) -> list[Found]:
        scope = RUNTIME_VARIABLES
        data = self.data
        header = data.get("document")
        dsl = header.get("dsl") if isinstance(header, dict) else None
        if isinstance(dsl, str) and not (dsl == "1.0" or dsl.startswith("1.0.")):
            self.report(
                ("document", "dsl"),
                f"this runtime reads DSL 1.0.x documents; this one says dsl: {dsl!r}",
            )
        section = data.get("input")
        if isinstance(section, dict):
            self.transform(("input", "from"), section.get("from"), scope)
        output = data.get("output")
        if isinstance(output, dict):
            self.transform(("output", "as"), output.get("as"), scope)
        self.timeout_ref(("timeout",), data.get("timeout"))
        self.use_section(scope)
        schedule = data.get("schedule")
        if isinstance(schedule, dict):
            self.strategy(("schedule", "on"), schedule.get("on"), scope)
            self.strings(("schedule",), schedule, scope, skip=("on",))
        self.task_list(("do",), data.get("do"), scope)
        return self.found

    def use_section(self, scope: frozenset[str]) -> None:
        functions = self.use.get("functions")
        if isinstance(functions, dict):
            for name, task in functions.items():
                self.task(("use", "functions", name), task, scope, siblings=None)
        for base, ext in _named_objects(("use", "extensions"), self.use.get("extensions")):
            self.expression((*base, "when"), ext.get("when"), scope, bare=True)
            for part in ("before", "after"):
                self.task_list((*base, part), ext.get(part), scope)
        for section in ("authentications", "errors", "retries", "timeouts", "catalogs"):
            value = self.use.get(section)
            if isinstance(value, dict):
                for name, item in value.items():
                    self.policy(("use", section, name), item, scope)

    def policy(self, path: Path, value: Any, scope: frozenset[str]) -> None:
        """Reusable definitions: retry conditions are jq, the rest may hold ``${ }``."""
        if isinstance(value, dict) and path[1] == "retries":
            for key in ("when", "exceptWhen"):
                self.expression((*path, key), value.get(key), scope, bare=True)
            self.strings(path, value, scope, skip=("when", "exceptWhen"))
            return
        if path[1] == "authentications":
            self.authentication(path, value, scope, reusable=True)
        self.strings(path, value, scope)

    # --- task lists and tasks --------------------------------------------------------------

    def task_list(self, path: Path, tasks: Any, scope: frozenset[str]) -> None:
        if not isinstance(tasks, list):
            return
        names: dict[str, int] = {}
        entries: list[tuple[Path, str, Any]] = []
        for index, item in enumerate(tasks):
            if not isinstance(item, dict) or len(item) != 1:
                continue
            ((name, task),) = item.items()
            if name in names:
                self.report(
                    (*path, index, name),
                    f"duplicate task name {name!r} (also task #{names[name] + 1} of this list)",
                )
            else:
                names[name] = index
            entries.append(((*path, index, name), name, task))
        siblings = frozenset(names)
        for task_path, _name, task in entries:
            self.task(task_path, task, scope, siblings=siblings)

    def then(self, path: Path, value: Any, siblings: frozenset[str] | None) -> None:
        if not isinstance(value, str) or value in FLOW_DIRECTIVES:
            return
        if siblings is None:
            self.report(path, f"'then: {value}' cannot name a task here; use continue, exit or end")
            return
        if value not in siblings:
            known = ", ".join(sorted(siblings))
            self.report(
                path,
                f"unknown task {value!r}: 'then' must name a task of this list ({known}) "
                "or be continue, exit or end",
            )

    def task(
        self, path: Path, task: Any, scope: frozenset[str], *, siblings: frozenset[str] | None
    ) -> None:
        if not isinstance(task, dict):
            return
        self.expression((*path, "if"), task.get("if"), scope, bare=True)
        for key, field_name in (("input", "from"), ("output", "as"), ("export", "as")):
            section = task.get(key)
            if isinstance(section, dict):
                self.transform((*path, key, field_name), section.get(field_name), scope)
        self.then((*path, "then"), task.get("then"), siblings)
        self.timeout_ref((*path, "timeout"), task.get("timeout"))
        kind = next((k for k in TASK_KINDS if k in task), None)
        if kind == "switch":
            self.task_switch(path, task, scope, siblings)
            return
        handler = getattr(self, f"task_{kind}", None) if kind else None
        if handler is not None:
            handler(path, task, scope)

    def task_call(self, path: Path, task: dict[str, Any], scope: frozenset[str]) -> None:
        call = task.get("call")
        arguments = task.get("with")
        self.function((*path, "call"), call, arguments, (*path, "with"))
        if not isinstance(arguments, dict):
            self.strings((*path, "with"), arguments, scope)
            return
        self.authentication_in((*path, "with"), arguments, scope)
        subscription = arguments.get("subscription")
        if call == "asyncapi" and isinstance(subscription, dict):
            base = (*path, "with", "subscription")
            self.iterator((*base, "foreach"), subscription.get("foreach"), scope)
            self.strings(base, subscription, scope, skip=("foreach",))
            self.strings((*path, "with"), arguments, scope, skip=("subscription",))
        else:
            self.strings((*path, "with"), arguments, scope)

    def function(
        self, path: Path, call: Any, arguments: Any = None, arguments_path: Path = ()
    ) -> None:
        if not isinstance(call, str):
            return
        if call in BUILTIN_CALLS:
            self.unsupported(path, f"call:{call}")
            return
        if call in self.declared("functions"):
            return
        if "://" in call:
            self.unsupported(path, "call:uri")
            return
        match = _CATALOG_CALL.match(call)
        if match is None:
            self.report(
                path,
                f"unknown function {call!r}: define it under use.functions, call a built-in "
                "(http, grpc, openapi, asyncapi, mcp, a2a) or a catalog function "
                "name:version@default",
            )
            return
        name, version, catalog = match.group("name", "version", "catalog")
        if catalog == "default":
            if self.catalog_has is not None and not self.catalog_has(name, version):
                self.report(
                    path, f"unknown function {name!r} version {version} in the default catalog"
                )
                return
            if self.catalog_check is not None:
                given = {} if arguments is None else arguments
                for where, message in self.catalog_check(name, version, given):
                    self.report((*(arguments_path or path), *where), message)
            return
        if catalog not in self.declared("catalogs"):
            self.report(
                path,
                f"unknown catalog {catalog!r}: declare it under use.catalogs or use the "
                "default catalog",
            )
            return
        self.unsupported(path, "catalog:external", f" (catalog {catalog!r})")

    def authentication_in(self, path: Path, value: Any, scope: frozenset[str]) -> None:
        """Find ``authentication`` entries inside call arguments (endpoint, service, with)."""
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "authentication":
                    self.authentication((*path, key), item, scope, reusable=False)
                else:
                    self.authentication_in((*path, key), item, scope)

    def authentication(
        self, path: Path, value: Any, scope: frozenset[str], *, reusable: bool
    ) -> None:
        if not isinstance(value, dict):
            return
        ref = value.get("use")
        if not reusable and isinstance(ref, str) and len(value) == 1:
            if ref not in self.declared("authentications"):
                self.report(
                    (*path, "use"),
                    f"authentication {ref!r} is not defined in use.authentications",
                )
            return
        secrets = self.declared("secrets")
        for scheme, config in value.items():
            if isinstance(config, dict) and isinstance(config.get("use"), str):
                secret = config["use"]
                if secret not in secrets:
                    self.report(
                        (*path, scheme, "use"),
                        f"secret {secret!r} is not declared in use.secrets",
                    )

    def timeout_ref(self, path: Path, value: Any) -> None:
        if isinstance(value, str) and value not in self.declared("timeouts"):
            self.report(path, f"timeout {value!r} is not defined in use.timeouts")

    def task_do(self, path: Path, task: dict[str, Any], scope: frozenset[str]) -> None:
        self.task_list((*path, "do"), task.get("do"), scope)

    def task_fork(self, path: Path, task: dict[str, Any], scope: frozenset[str]) -> None:
        fork = task.get("fork")
        if isinstance(fork, dict):
            self.task_list((*path, "fork", "branches"), fork.get("branches"), scope)

    def task_for(self, path: Path, task: dict[str, Any], scope: frozenset[str]) -> None:
        loop = task.get("for")
        inner = scope
        if isinstance(loop, dict):
            self.expression((*path, "for", "in"), loop.get("in"), scope, bare=True)
            inner = scope | self.variables((*path, "for"), loop, ("each", "item"), ("at", "index"))
        self.expression((*path, "while"), task.get("while"), inner, bare=True)
        self.task_list((*path, "do"), task.get("do"), inner)

    def variables(
        self, path: Path, config: dict[str, Any], *pairs: tuple[str, str]
    ) -> frozenset[str]:
        names = set()
        for key, default in pairs:
            name = config.get(key, default)
            if not isinstance(name, str):
                continue
            if not _VARIABLE.match(name):
                self.report((*path, key), f"{name!r} is not a valid variable name")
                continue
            names.add(name)
        return frozenset(names)

    def task_listen(self, path: Path, task: dict[str, Any], scope: frozenset[str]) -> None:
        listen = task.get("listen")
        if isinstance(listen, dict):
            self.strategy((*path, "listen", "to"), listen.get("to"), scope)
        self.iterator((*path, "foreach"), task.get("foreach"), scope)

    def strategy(self, path: Path, value: Any, scope: frozenset[str]) -> None:
        """An event consumption strategy (``one``/``any``/``all``, ``until``)."""
        if not isinstance(value, dict):
            return
        until = value.get("until")
        if isinstance(until, str):
            self.expression((*path, "until"), until, scope, bare=True)
        elif isinstance(until, dict):
            self.strategy((*path, "until"), until, scope)
        self.strings(path, value, scope, skip=("until",))

    def iterator(self, path: Path, value: Any, scope: frozenset[str]) -> None:
        if not isinstance(value, dict):
            return
        inner = scope | self.variables(path, value, ("item", "item"), ("at", "index"))
        self.task_list((*path, "do"), value.get("do"), inner)
        for key in ("output", "export"):
            section = value.get(key)
            if isinstance(section, dict):
                self.transform((*path, key, "as"), section.get("as"), inner)

    def task_raise(self, path: Path, task: dict[str, Any], scope: frozenset[str]) -> None:
        spec = task.get("raise")
        if not isinstance(spec, dict):
            return
        error = spec.get("error")
        if isinstance(error, str):
            if error not in self.declared("errors"):
                self.report(
                    (*path, "raise", "error"), f"error {error!r} is not defined in use.errors"
                )
        else:
            self.strings((*path, "raise"), spec, scope)

    def task_run(self, path: Path, task: dict[str, Any], scope: frozenset[str]) -> None:
        run = task.get("run")
        if not isinstance(run, dict):
            return
        base = (*path, "run")
        script = run.get("script")
        if isinstance(script, dict):
            # Script code is another language; ${ } inside it is not ours to check.
            self.strings((*base, "script"), script, scope, skip=("code",))
            language = script.get("language")
            runtime = self.runtime
            if (
                runtime is not None
                and isinstance(language, str)
                and script_language(language) not in runtime.script_languages
            ):
                available = ", ".join(sorted(runtime.script_languages)) or "none"
                self.report(
                    (*base, "script", "language"),
                    f"unsupported on this machine: run.script in language {language!r} "
                    f"(available: {available})",
                )
        if "container" in run and self.runtime is not None and not self.runtime.container:
            self.report(
                (*base, "container"),
                "unsupported on this machine: run.container needs docker or podman on the PATH",
            )
        self.strings(base, run, scope, skip=("script",))

    def task_set(self, path: Path, task: dict[str, Any], scope: frozenset[str]) -> None:
        self.strings((*path, "set"), task.get("set"), scope)

    def task_emit(self, path: Path, task: dict[str, Any], scope: frozenset[str]) -> None:
        self.strings((*path, "emit"), task.get("emit"), scope)

    def task_wait(self, path: Path, task: dict[str, Any], scope: frozenset[str]) -> None:
        self.strings((*path, "wait"), task.get("wait"), scope)

    def task_switch(
        self,
        path: Path,
        task: dict[str, Any],
        scope: frozenset[str],
        siblings: frozenset[str] | None,
    ) -> None:
        for base, case in _named_objects((*path, "switch"), task.get("switch")):
            self.expression((*base, "when"), case.get("when"), scope, bare=True)
            self.then((*base, "then"), case.get("then"), siblings)

    def task_try(self, path: Path, task: dict[str, Any], scope: frozenset[str]) -> None:
        self.task_list((*path, "try"), task.get("try"), scope)
        catch = task.get("catch")
        if not isinstance(catch, dict):
            return
        base = (*path, "catch")
        inner = scope | self.variables(base, catch, ("as", "error"))
        for key in ("when", "exceptWhen"):
            self.expression((*base, key), catch.get(key), inner, bare=True)
        self.strings((*base, "errors"), catch.get("errors"), scope)
        retry = catch.get("retry")
        if isinstance(retry, str):
            if retry not in self.declared("retries"):
                self.report(
                    (*base, "retry"), f"retry policy {retry!r} is not defined in use.retries"
                )
        elif isinstance(retry, dict):
            for key in ("when", "exceptWhen"):
                self.expression((*base, "retry", key), retry.get(key), inner, bare=True)
        self.task_list((*base, "do"), catch.get("do"), inner)


def _named_objects(path: Path, items: Any) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The objects of a list of ``{name: object}`` entries at ``path``, each with its path.

    Anything of another shape is skipped: the schema already reports it.
    """
    if not isinstance(items, list):
        return
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        for name, value in item.items():
            if isinstance(value, dict):
                yield (*path, index, name), value


def semantic_problems(
    data: dict[str, Any],
    *,
    catalog_has: Callable[[str, str], bool] | None = None,
    catalog_check: CatalogCheck | None = None,
    runtime: RuntimeFeatures | None = None,
) -> list[Found]:
    """All semantic findings of a document as ``(path, message)`` pairs, in document order."""
    if not isinstance(data, dict):
        return []  # the schema reports a top level that is not a mapping
    return _Checker(data, catalog_has, runtime, catalog_check).run()
