"""The HTTP API: a FastAPI app built around an :class:`~opsloom.app.App`.

Routes are thin: they validate the request, call the App (or a use case in
:mod:`opsloom.services`) and render the result; errors become RFC 9457 problem+json answers.
"""

from opsloom.api.factory import create_api

__all__ = ["create_api"]
