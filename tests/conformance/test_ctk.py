"""The Serverless Workflow Conformance Test Kit (``ctk/*.feature``), run by pytest-bdd."""

from __future__ import annotations

from pytest_bdd import scenarios

scenarios("ctk")
