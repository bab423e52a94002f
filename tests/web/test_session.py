"""The web UI over HTTP without a browser: sign-in, CSRF, roles, pages answering."""

from __future__ import annotations

from fastapi import FastAPI
from webkit import ENV_TOKEN, browser, csrf_in, sign_in, token_of

from opsloom import App, Context
from opsloom.identity.access import Identity
from opsloom.web.session import SESSION_COOKIE


async def test_pages__need_a_session(api: FastAPI) -> None:
    async with browser(api) as client:
        for path in ("/", "/runs", "/approvals", "/workflows", "/events", "/triggers", "/audit"):
            answer = await client.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/signin?next="), path


async def test_signin__a_wrong_token_is_refused(api: FastAPI) -> None:
    async with browser(api) as client:
        form = await client.get("/signin")
        answer = await client.post("/signin", data={"csrf": csrf_in(form.text), "token": "nope"})
        assert answer.status_code == 401
        assert "not valid" in answer.text
        assert SESSION_COOKIE not in client.cookies


async def test_signin__without_its_csrf_token_is_refused(api: FastAPI) -> None:
    async with browser(api) as client:
        answer = await client.post("/signin", data={"token": ENV_TOKEN})
        assert answer.status_code == 403
        assert SESSION_COOKIE not in client.cookies


async def test_start__operator_starts_a_run_and_a_forged_post_is_refused(
    app: App, api: FastAPI
) -> None:
    async with browser(api) as client:
        csrf = await sign_in(client, await token_of(app, "olga", "operator"))
        forged = await client.post("/runs", data={"workflow": "echo", "input": "1"})
        assert forged.status_code == 403
        wrong = await client.post("/runs", data={"workflow": "echo", "csrf": "x" + csrf})
        assert wrong.status_code == 403
        assert await app.list_runs() == []
        started = await client.post(
            "/runs", data={"workflow": "echo", "input": '{"n": 1}', "csrf": csrf}
        )
        assert started.status_code == 303, started.text
        [run] = await app.list_runs()
        assert started.headers["location"].startswith(f"/runs/{run.id}")
        assert await app.result(run.id, timeout=10) == {"n": 1}
        # The start is audited under the signed-in user's name.
        entries = await app.audit.entries()
        assert any(e.actor == "olga" and e.action == "run.start" for e in entries)
        page = await client.get(f"/runs/{run.id}")
        assert "completed" in page.text


async def test_viewer__sees_no_action_and_cannot_post(app: App, api: FastAPI) -> None:
    run = await app.start("echo", 1)
    await run.result(timeout=10)
    async with browser(api) as client:
        csrf = await sign_in(client, await token_of(app, "vic", "viewer"))
        for path in ("/workflows", f"/runs/{run.run_id}", "/approvals", "/triggers"):
            page = await client.get(path)
            assert page.status_code == 200, path
            assert "<button" not in page.text.replace(
                '<button type="submit" class="link">Sign out</button>', ""
            ), path
        refused = await client.post("/runs", data={"workflow": "echo", "csrf": csrf})
        assert refused.status_code == 403
        assert "operator" in refused.text
        assert len(await app.list_runs()) == 1


async def test_signout__ends_the_session(app: App, api: FastAPI) -> None:
    async with browser(api) as client:
        csrf = await sign_in(client, ENV_TOKEN)
        assert (await client.get("/runs")).status_code == 200
        assert (await client.post("/signout", data={})).status_code == 403
        answer = await client.post("/signout", data={"csrf": csrf})
        assert answer.status_code == 303
        assert (await client.get("/runs")).status_code == 303


async def test_session__a_revoked_token_ends_it(app: App, api: FastAPI) -> None:
    identity = Identity(app.store, app.clock)
    token = await token_of(app, "rita", "viewer")
    async with browser(api) as client:
        await sign_in(client, token)
        [record] = await identity.tokens("rita")
        await identity.revoke_token(record.id, actor="test")
        assert (await client.get("/runs")).status_code == 303


async def test_docs__swagger_and_redoc_from_vendored_files(api: FastAPI) -> None:
    async with browser(api) as client:
        for path, bundle in (
            ("/docs", "/static/vendor/swagger-ui-dist/swagger-ui-bundle.js"),
            ("/redoc", "/static/vendor/redoc/redoc.standalone.js"),
        ):
            page = await client.get(path)
            assert page.status_code == 200
            assert bundle in page.text
            assert "cdn" not in page.text.lower()
            assert "script-src 'self';" in page.headers["content-security-policy"]
            assert (await client.get(bundle)).status_code == 200
        assert (await client.get("/openapi.json")).status_code == 200


async def test_run_page__long_history_loads_step_outputs_on_demand(app: App, api: FastAPI) -> None:
    @app.step()
    def bump(n: int) -> int:
        return n + 1

    @app.workflow(name="long")
    async def long(ctx: Context, count: int) -> int:
        value = 0
        for _ in range(count):
            value = await ctx.step(bump, value)
        return value

    app.worker.refresh_kinds()  # type: ignore[union-attr]
    short, many = await app.start("long", 3), await app.start("long", 250)
    assert await many.result(timeout=60) == 250
    await short.result(timeout=30)
    async with browser(api) as client:
        await sign_in(client, ENV_TOKEN)
        inline = (await client.get(f"/runs/{short.run_id}")).text
        assert "hx-get" not in inline.split("<tbody>", 1)[1]
        page = (await client.get(f"/runs/{many.run_id}")).text
        assert f'hx-get="/runs/{many.run_id}/steps/250"' in page
        # The first and last hundred steps; the fifty between are one link away.
        assert "50 more steps" in page
        assert f'hx-get="/runs/{many.run_id}/steps/150"' not in page
        every = (await client.get(f"/runs/{many.run_id}?steps=all")).text
        assert f'hx-get="/runs/{many.run_id}/steps/150"' in every
        output = await client.get(f"/runs/{many.run_id}/steps/150")
        assert output.text == "150"
        assert (await client.get(f"/runs/{many.run_id}/steps/999")).status_code == 404


async def test_attach__api_paths_keep_their_problem_answers(api: FastAPI) -> None:
    async with browser(api) as client:
        missing = await client.get("/api/v1/nothing")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        wrong = await client.delete("/api/v1/runs")
        assert wrong.status_code == 405
        assert (await client.get("/hooks/nothing")).headers["content-type"].endswith("json")
        page = await client.get("/no-such-page")
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
