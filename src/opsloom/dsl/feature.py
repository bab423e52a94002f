"""What this runtime and this machine support, for the checks that depend on it.

:data:`UNSUPPORTED_FEATURES` lists what the DSL allows but opsloom does not run (yet);
:class:`RuntimeFeatures` says what the machine at hand offers (a container engine, script
interpreters). Validation given a ``RuntimeFeatures`` reports documents that need more.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

#: Functions every runtime knows (``call: http`` …); anything else is a custom function.
BUILTIN_CALLS = frozenset({"http", "grpc", "openapi", "asyncapi", "mcp", "a2a"})

#: Features this runtime does not run yet. A document using one still loads; validation with a
#: :class:`RuntimeFeatures` reports it, naming the feature. Remove an entry once it is supported.
UNSUPPORTED_FEATURES: dict[str, str] = {
    "call:grpc": "gRPC calls (call: grpc)",
    "call:asyncapi": "AsyncAPI calls (call: asyncapi)",
    "call:mcp": "MCP calls (call: mcp)",
    "call:a2a": "A2A calls (call: a2a)",
    "call:uri": "functions defined at a URL (call: https://…)",
    "catalog:external": "functions of catalogs other than 'default'",
}

_LANGUAGE_ALIASES = {"javascript": "js", "node": "js", "nodejs": "js", "python3": "python"}


def script_language(name: str) -> str:
    """The canonical name of a ``run.script`` language (``"JavaScript"`` -> ``"js"``)."""
    lowered = name.lower()
    return _LANGUAGE_ALIASES.get(lowered, lowered)


@dataclass(frozen=True)
class RuntimeFeatures:
    """What this machine can run, for the checks that depend on it.

    Attributes:
        container: Whether ``run.container`` can start containers (docker or podman present).
        script_languages: Languages ``run.script`` can run (``"python"``; ``"js"`` with node).
    """

    container: bool = False
    script_languages: frozenset[str] = field(default_factory=lambda: frozenset({"python"}))

    @classmethod
    def detect(cls) -> RuntimeFeatures:
        """Look at the PATH of this process for a container engine and script interpreters."""
        languages = {"python"}
        if shutil.which("node"):
            languages.add("js")
        container = bool(shutil.which("docker") or shutil.which("podman"))
        return cls(container=container, script_languages=frozenset(languages))
