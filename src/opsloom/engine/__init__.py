"""Durable execution: the context workflow code sees, replay, and running one run."""

from opsloom.engine.context import Context, StepInfo, current_step
from opsloom.engine.registry import Registry, StepSpec, WorkflowSpec

__all__ = ["Context", "Registry", "StepInfo", "StepSpec", "WorkflowSpec", "current_step"]
