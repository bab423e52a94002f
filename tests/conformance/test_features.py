"""This project's own features, in the CTK's style: what the kit does not cover."""

from __future__ import annotations

from pytest_bdd import scenarios

scenarios("features")
