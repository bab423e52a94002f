"""API tokens for tests, made the way users get theirs: a user and a token through Identity."""

from __future__ import annotations

from collections.abc import Iterable

from opsloom import App
from opsloom.identity.access import Identity


async def bearer(app: App, user: str = "tester", roles: Iterable[str] = ("admin",)) -> str:
    """A token of a new user holding ``roles`` (the App must be open)."""
    identity = Identity(app.store, app.clock)
    await identity.add_user(user, roles=roles, actor="test")
    return await identity.create_token(user, name="test", actor="test")


async def auth_headers(
    app: App, user: str = "tester", roles: Iterable[str] = ("admin",)
) -> dict[str, str]:
    """``Authorization`` headers with a token of a new user holding ``roles``."""
    return {"Authorization": f"Bearer {await bearer(app, user, roles)}"}
