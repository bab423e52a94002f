"""What the web tests share: an application with a few workflows, its UI, signing in."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI

from opsloom import App, Context
from opsloom.api import create_api
from opsloom.identity.access import Identity
from opsloom.settings import Settings
from opsloom.web import attach_ui

ENV_TOKEN = "automation-token"
ALERT = "com.example.alert.firing"
ACK = "com.example.alert.acknowledged"


def build_app(url: str) -> App:
    """An application with the workflows the web tests run."""
    app = App(url)

    @app.workflow(name="echo")
    async def echo(ctx: Context, value: object = None) -> object:
        return value

    @app.workflow(name="family")
    async def family(ctx: Context, depth: int = 2) -> int:
        if depth <= 0:
            return 0
        counts = await ctx.gather(ctx.child("family", depth - 1), ctx.child("family", depth - 1))
        return 2 + sum(counts)

    @app.workflow(name="incident")
    async def incident(ctx: Context, alert: object = None) -> object:
        return await ctx.wait_for_event({"type": ACK}, timeout=600)

    app.trigger("incident", on={"type": ALERT})
    return app


def ui_of(app: App) -> FastAPI:
    settings = Settings(api_token=ENV_TOKEN)
    api = create_api(app, settings)
    attach_ui(api, app, settings)
    return api


def browser(api: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://opsloom.test")


async def token_of(app: App, user: str, role: str) -> str:
    identity = Identity(app.store, app.clock)
    await identity.add_user(user, roles=[role], actor="test")
    return await identity.create_token(user, name="web", actor="test")


def csrf_in(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, token: str) -> str:
    """Sign in as a browser would; the CSRF token of the pages that follow."""
    form = await client.get("/signin")
    answer = await client.post(
        "/signin", data={"csrf": csrf_in(form.text), "token": token, "next": "/workflows"}
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/workflows"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie, cookie
    return csrf_in((await client.get("/workflows")).text)
