"""API documents (OpenAPI 3.x, Swagger 2.0) for ``call: openapi``: loading and caching.

A document is read from an http(s) URL (with the endpoint's authentication, redirects
followed), a ``file://`` URL or a local path, parsed as JSON or YAML, checked to be Swagger 2.0
or OpenAPI 3.x, and kept in a small bounded cache by location.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import httpx
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from opsloom.dsl.auth import AuthResolver
from opsloom.dsl.http import endpoint_parts, expand_uri, unanswered
from opsloom.expr.problem import TaskError


class DocumentCache:
    """Parsed API documents by location: least recently used evicted, entries expire.

    Args:
        size: how many documents to keep.
        ttl: seconds a document is trusted before it is loaded again.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self, size: int = 32, ttl: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._size = size
        self._ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    def get(self, location: str) -> dict[str, Any] | None:
        """The cached document at ``location``, or None."""
        entry = self._entries.get(location)
        if entry is None:
            return None
        if self._clock() - entry[0] > self._ttl:
            del self._entries[location]
            return None
        self._entries.move_to_end(location)
        return entry[1]

    def put(self, location: str, document: dict[str, Any]) -> None:
        """Keep ``document``, evicting the least recently used one when full."""
        self._entries[location] = (self._clock(), document)
        self._entries.move_to_end(location)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


DEFAULT_DOCUMENTS = DocumentCache()
"""The process-wide cache used when a call passes none."""


async def load_document(
    resource: Any,
    *,
    input: Any,
    auth: AuthResolver,
    client: httpx.AsyncClient,
    documents: DocumentCache,
) -> tuple[str, dict[str, Any]]:
    """Load (or take from the cache) the document an external resource points at.

    Returns:
        ``(location, document)``: the absolute location it was read from and its content.
    """
    endpoint = resource.get("endpoint") if isinstance(resource, Mapping) else resource
    uri, authentication = endpoint_parts(endpoint)
    location = expand_uri(uri, input)
    scheme = urlsplit(location).scheme.lower()
    if scheme in ("http", "https"):
        cached = documents.get(location)
        if cached is not None:
            return location, cached
        text, ctype = await _fetch(location, authentication, auth, client)
    elif scheme == "file" or not scheme or len(scheme) == 1:  # one letter: a Windows drive
        if scheme == "file":
            path = Path(url2pathname(unquote(urlsplit(location).path)))
        else:
            path = Path(location)
        path = path.resolve()
        location = path.as_uri()
        cached = documents.get(location)
        if cached is not None:
            return location, cached
        try:
            text = await asyncio.to_thread(path.read_text, encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise unusable(f"cannot read API document {path}: {exc}") from None
        ctype = ""
    else:
        raise unusable(f"cannot load an API document from {location!r}")
    document = parse_document(text, ctype, location)
    documents.put(location, document)
    return location, document


async def _fetch(
    url: str, authentication: Any, auth: AuthResolver, client: httpx.AsyncClient
) -> tuple[str, str]:
    headers = {"Accept": "application/json, application/yaml;q=0.9, */*;q=0.5"}
    headers.update(await auth.headers_for(authentication))
    try:
        response = await client.get(url, headers=headers, follow_redirects=True)
    except httpx.TimeoutException:
        raise TaskError.standard(
            "timeout", f"loading API document {url} timed out", title="Request timed out"
        ) from None
    except httpx.HTTPError as exc:
        raise unanswered(exc, f"loading API document {url}", auth) from None
    if not response.is_success:
        raise TaskError.standard(
            "communication",
            f"loading API document {url} answered {response.status_code}",
            status=response.status_code,
            title=response.reason_phrase or f"HTTP {response.status_code}",
        )
    return response.text, response.headers.get("content-type", "")


def parse_document(text: str, ctype: str, location: str) -> dict[str, Any]:
    """Parse a JSON or YAML API document and check it is Swagger 2.0 or OpenAPI 3.x."""
    data: Any = None
    if "yaml" not in ctype.lower():
        try:
            data = json.loads(text)
        except ValueError:
            data = None
    if data is None:
        try:
            data = YAML(typ="safe", pure=True).load(text)
        except YAMLError as exc:
            # Only the position: the parser's message quotes the text, and a document must not
            # be a way to read local files through error messages.
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise unusable(f"API document {location} is neither JSON nor YAML{where}") from None
    if not isinstance(data, dict):
        raise unusable(f"API document {location} is not an object")
    if str(data.get("swagger", "")).startswith("2."):
        return data
    if str(data.get("openapi", "")).startswith("3."):
        return data
    raise unusable(f"API document {location} is neither Swagger 2.0 nor OpenAPI 3.x")


def unusable(detail: str) -> TaskError:
    """A ``configuration`` TaskError about an API document."""
    return TaskError.standard("configuration", detail, title="Unusable API document")
