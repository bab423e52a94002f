"""Temporal's Python programming model on opsloom: port ``temporalio`` code by changing imports.

The submodules mirror ``temporalio``'s: :mod:`~opsloom.compat.temporal.workflow`,
:mod:`~opsloom.compat.temporal.activity`, :mod:`~opsloom.compat.temporal.client`,
:mod:`~opsloom.compat.temporal.worker`, :mod:`~opsloom.compat.temporal.common` and
:mod:`~opsloom.compat.temporal.exceptions`. Workflows run as ordinary opsloom runs (one run per
workflow execution, one step per activity attempt series) on an opsloom store, with no Temporal
cluster. What is supported and where the semantics differ: ``docs/howto/temporal.md``.
"""
