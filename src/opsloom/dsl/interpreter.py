"""The interpreter: runs a document as one durable engine workflow.

Every leaf task (``set``, ``switch``, ``raise``, ``call: http`` …) runs as one checkpointed step
named after its JSON pointer (``/do/0/setRed``), and the step does the task's whole data flow
(``input.from``, the task, ``output.as``, ``export.as``). A replay after a crash returns the
recorded results and resumes at the task that was running. Composite tasks (``do``, ``for``,
``try``, ``fork``) and durable waits (``wait``, ``listen``, catalog functions, ``run:
workflow``) run in the workflow itself; their data flow is jq over recorded values, which is
deterministic, so a replay takes the same path.

A task error travels as a :class:`~opsloom.expr.problem.TaskError`; a step returns it as a value
(never as a step failure) so the engine neither retries it nor loses its fields.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from opsloom.dsl import flow
from opsloom.dsl.duration import seconds_of
from opsloom.dsl.leaf import run_leaf
from opsloom.dsl.scope import RunState, Scope, variables
from opsloom.dsl.task import EndFlow, TaskCall, entries, task_type
from opsloom.engine.registry import attach_step_spec, make_step_spec
from opsloom.errors import OpsloomError
from opsloom.expr.evaluator import Evaluator, is_expression
from opsloom.expr.problem import TaskError
from opsloom.model import RetryPolicy
from opsloom.model.redaction import Redactor, secret_strings

if TYPE_CHECKING:
    from opsloom.dsl.runtime import DslRuntime

# ``EndFlow``, ``entries`` and ``task_type`` live in ``task.py``; callers still name them here.
__all__ = ["DocumentFaultedError", "EndFlow", "Interpreter", "entries", "task_type"]

_ONCE = RetryPolicy(attempts=1)

Leaf = Callable[..., Awaitable[dict[str, Any]]]


class Interpreter:
    """Runs one document (one version) on the engine.

    Args:
        runtime: the DSL runtime (catalog, HTTP client, secrets, evaluator).
        data: the document as plain JSON data.
        workflow_name: the engine workflow name (``namespace/name``).
    """

    def __init__(self, runtime: DslRuntime[Any], data: dict[str, Any], workflow_name: str) -> None:
        self.runtime = runtime
        self.data = data
        self.workflow_name = workflow_name
        self.document: dict[str, Any] = data.get("document", {})
        self.use: dict[str, Any] = data.get("use", {}) or {}
        self.evaluator: Evaluator = runtime.evaluator
        self._leaves: dict[str, Leaf] = {}
        self._declared: list[str] = list(self.use.get("secrets") or [])
        #: From the store's deployed documents (not registered by the operator's own code).
        self.deployed = False

    # --- the workflow function ----------------------------------------------------------------

    async def main(self, ctx: Any, raw_input: Any) -> Any:
        """The engine workflow function of the document."""
        started = ctx.now().isoformat()
        state = RunState(
            ctx=ctx,
            context={},
            workflow={
                "id": ctx.run_id,
                "definition": self.data,
                "input": raw_input,
                "startedAt": started,
                "startedBy": getattr(ctx, "started_by", None),
            },
            runtime=self.runtime.describe(),
            secrets=self.secrets,
        )
        scope = Scope()
        timeout = self.data.get("timeout")
        if timeout is not None:
            scope = scope.with_deadline(ctx.now().timestamp() + self.timeout_of(timeout), "/")
        try:
            value = await self.transform_input(self.data.get("input"), raw_input, state, scope, "")
            try:
                value = await self.run_list(self.data.get("do"), "/do", value, state, scope)
            except EndFlow as end:
                value = end.output
            value = await self.transform_output(self.data.get("output"), value, raw_input, state)
            value = self.redactor.value(value)
        except TaskError as error:
            if error.instance is None:
                error.instance = "/"
            # The run's stored error carries the DSL error object (``data.error``).
            redactor = self.redactor
            if redactor:
                error.title = redactor.text(error.title) if error.title else error.title
                error.detail = redactor.text(error.detail) if error.detail else error.detail
            raise DocumentFaultedError(error) from None
        return value

    @property
    def secrets(self) -> dict[str, Any]:
        """The secrets this document declares in ``use.secrets`` (it sees no others)."""
        source = self.runtime.secrets
        return {name: source[name] for name in self._declared if name in source}

    @property
    def redactor(self) -> Redactor:
        """Masks the values of this document's secrets in what its tasks record."""
        return Redactor(s for value in self.secrets.values() for s in secret_strings(value))

    @property
    def branch_workflow(self) -> str:
        """The engine workflow that runs one ``fork`` branch of this document as a child run."""
        return f"{self.workflow_name}:{self.document.get('version')}#branch"

    def task_at(self, pointer: str) -> tuple[str, dict[str, Any]]:
        """The task (name, definition) at a JSON pointer such as ``/do/0/fork/branches/1/b``."""
        parts = pointer.strip("/").split("/")
        node: Any = self.data
        i = 0
        while i < len(parts):
            key = parts[i]
            if isinstance(node, list):
                node = node[int(key)]
                name = parts[i + 1]
                node = node[name]
                i += 2
                continue
            node = node[key]
            i += 1
        return parts[-1], node

    # --- tasks ---------------------------------------------------------------------------------

    async def run_list(
        self, tasks: Any, base: str, value: Any, state: RunState, scope: Scope
    ) -> Any:
        """Run the task list ``tasks`` (at pointer ``base``) on ``value``; its output."""
        return await flow.run_list(self, tasks, base, value, state, scope)

    async def run_task(self, call: TaskCall) -> tuple[Any, Any]:
        """Run one task; its output and the flow directive that follows it."""
        return await flow.run_task(call)

    # --- leaf tasks as steps ------------------------------------------------------------------

    def leaf(self, pointer: str) -> Leaf:
        """The step function of the leaf task at ``pointer`` (one per task, named after it)."""
        found = self._leaves.get(pointer)
        if found is None:
            found = functools.partial(run_leaf, self, pointer)
            attach_step_spec(found, make_step_spec(found, pointer, _ONCE, None))
            self._leaves[pointer] = found
        return found

    # --- data flow ----------------------------------------------------------------------------

    async def transform_input(
        self, spec: Any, value: Any, state: RunState, scope: Scope, pointer: str
    ) -> Any:
        """Validate then filter a task's (or the workflow's) input."""
        if not spec:
            return value
        schema = spec.get("schema")
        if schema is not None:
            self.validate(schema, value, f"{pointer}/input" if pointer else "/input")
        source = spec.get("from")
        if source is None:
            return value
        return await self.expression(source, value, variables(state, scope, input=value))

    async def transform_output(
        self, spec: Any, value: Any, task_input: Any, state: RunState, scope: Scope | None = None
    ) -> Any:
        """Filter then validate a task's (or the workflow's) output."""
        if not spec:
            return value
        shape = spec.get("as")
        if shape is not None:
            value = await self.expression(
                shape, value, variables(state, scope or Scope(), input=task_input, output=value)
            )
        schema = spec.get("schema")
        if schema is not None:
            self.validate(schema, value, "/output")
        return value

    async def export(
        self, spec: Any, output: Any, task_input: Any, state: RunState, scope: Scope
    ) -> None:
        """Apply ``export.as``: the task's output becomes (part of) ``$context``."""
        if not spec:
            return
        shape = spec.get("as")
        if shape is not None:
            state.context = await self.expression(
                shape, output, variables(state, scope, input=task_input, output=output)
            )
        schema = spec.get("schema")
        if schema is not None:
            self.validate(schema, state.context, "/export")

    async def expression(self, source: Any, value: Any, names: Mapping[str, Any]) -> Any:
        """A field that is an expression (string) or a template of expressions (object)."""
        if isinstance(source, str):
            return await self.evaluator.evaluate(source, value, names)
        return await self.evaluator.render(source, value, names)

    async def render(self, template: Any, value: Any, names: Mapping[str, Any]) -> Any:
        """Evaluate the ``${ }`` strings of ``template``, deeply."""
        if isinstance(template, str) and not is_expression(template):
            return template
        return await self.evaluator.render(template, value, names)

    def validate(self, schema: Any, value: Any, where: str) -> None:
        """Check ``value`` against a schema (``document`` inline; ``resource`` is refused)."""
        import jsonschema  # type: ignore[import-untyped]

        document = schema.get("document") if isinstance(schema, dict) else None
        if document is None:
            raise TaskError.standard(
                "configuration", f"only inline schemas are supported ({where})", instance=where
            )
        try:
            jsonschema.validate(value, document)
        except jsonschema.ValidationError as exc:
            raise TaskError.standard(
                "validation", f"{where}: {exc.message}", instance=where
            ) from None

    # --- reusable components ------------------------------------------------------------------

    def timeout_of(self, spec: Any) -> float:
        """Seconds of a ``timeout`` (inline, or the name of one in ``use.timeouts``)."""
        if isinstance(spec, str):
            found = (self.use.get("timeouts") or {}).get(spec)
            if found is None:
                raise TaskError.standard("configuration", f"no timeout named {spec!r}")
            spec = found
        return seconds_of(spec.get("after") if isinstance(spec, dict) else spec)

    def component(self, kind: str, name: str) -> Any:
        """A named reusable component (``use.errors.X``, ``use.retries.X`` …)."""
        found = (self.use.get(kind) or {}).get(name)
        if found is None:
            raise TaskError.standard(
                "configuration", f"no {kind[:-1]} named {name!r} in use.{kind}"
            )
        return found


class DocumentFaultedError(OpsloomError):
    """A document run ended with an uncaught error; ``error`` is the DSL error object."""

    code = "document_faulted"

    def __init__(self, error: TaskError) -> None:
        parts = [error.title or error.type.rsplit("/", 1)[-1]]
        if error.detail:
            parts.append(error.detail)
        super().__init__(f"{': '.join(parts)} (status {error.status} at {error.instance})")
        self.error = error.to_dict()
        #: Extra data for the stored run error (the DSL error object).
        self.details = {"error": self.error}
