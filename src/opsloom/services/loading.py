"""Finding the user's application: ``--app module:attribute``, as uvicorn does."""

from __future__ import annotations

import importlib
import os
import sys

from opsloom.app import App
from opsloom.errors import ConfigurationError


def load_app(target: str) -> App:
    """Import ``module:attribute`` (the current directory is importable) and return the App."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"--app must look like 'module:attribute', not {target!r}")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r} for --app: {exc}") from None
    value = module
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise ConfigurationError(
                f"module {module_name!r} has no attribute {attribute!r} (from --app)"
            ) from None
    if not isinstance(value, App):
        raise ConfigurationError(f"{target} is a {type(value).__name__}, not an opsloom App")
    return value
