"""Workflows in the browser: code and document workflows, a document's source and task graph,
and deploying a document with the validator's findings shown at their lines."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsloom.dsl.document import parse_document
from opsloom.errors import DocumentError
from opsloom.services.document import deploy_document
from opsloom.services.workflow import list_workflows
from opsloom.web.graph import document_graph
from opsloom.web.inputform import fields_of, input_schema
from opsloom.web.page import AppDep, OperatorChange, PagesDep, SessionDep

router = APIRouter()


@router.get("/workflows", response_class=HTMLResponse, summary="Workflows")
async def workflows_page(
    request: Request, app: AppDep, pages: PagesDep, session: SessionDep
) -> Response:
    documents = await app.store.list_documents()
    return pages.render(
        request,
        "workflows.html",
        session,
        workflows=list_workflows(app),
        documents=sorted(documents, key=lambda d: (d.workflow, d.deployed_at)),
        chosen=request.query_params.get("workflow", ""),
    )


@router.get("/documents/{namespace}/{name}/{version}", response_class=HTMLResponse)
async def document_page(
    request: Request,
    namespace: str,
    name: str,
    version: str,
    app: AppDep,
    pages: PagesDep,
    session: SessionDep,
) -> Response:
    record = await app.store.get_document(namespace, name, version)
    if record is None:
        return pages.render(
            request, "error.html", session, status=404, message="no such deployed document"
        )
    document = parse_document(record.text, record.workflow)
    return pages.render(
        request,
        "document.html",
        session,
        record=record,
        graph=document_graph(document),
        lines=_lines(record.text),
        fields=fields_of(input_schema(document.data)),
        notice=request.query_params.get("notice", ""),
    )


def _lines(text: str, problems: dict[int, list[str]] | None = None) -> list[dict[str, Any]]:
    found = problems or {}
    return [
        {"number": n, "text": line, "problems": found.get(n, [])}
        for n, line in enumerate(text.splitlines(), start=1)
    ]


@router.get("/deploy", response_class=HTMLResponse, summary="Deploy a document")
async def deploy_page(request: Request, pages: PagesDep, session: SessionDep) -> Response:
    return pages.render(request, "deploy.html", session, text="", lines=[], problems=[])


@router.post("/deploy", summary="Deploy a document")
async def deploy(
    request: Request, app: AppDep, pages: PagesDep, change: OperatorChange
) -> Response:
    session, form = change
    # Browsers send a textarea's line breaks as CRLF; the document is stored as typed.
    text = form.get("document", "").replace("\r\n", "\n")
    try:
        record, created = await deploy_document(app, text, "web", actor=session.principal.user)
    except DocumentError as exc:
        by_line: dict[int, list[str]] = {}
        for problem in exc.problems:
            by_line.setdefault(problem.line, []).append(problem.message)
        return pages.render(
            request,
            "deploy.html",
            session,
            status=422,
            text=text,
            problems=exc.problems,
            lines=_lines(text, by_line),
        )
    notice = "deployed" if created else "already deployed"
    return RedirectResponse(
        f"/documents/{record.namespace}/{record.name}/{record.version}?notice={notice}",
        status_code=303,
    )
