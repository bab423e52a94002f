"""Approval-link tokens never reach the access log."""

from __future__ import annotations

import logging

import pytest

from opsloom.api.server import mask_link_tokens


def test_access_log__masks_approval_link_tokens(caplog: pytest.LogCaptureFixture) -> None:
    mask_link_tokens()
    mask_link_tokens()  # installing twice adds one filter
    logger = logging.getLogger("uvicorn.access")
    assert len(logger.filters) == 1
    token = "v1.c2VjcmV0LXRva2Vu.abcdef0123456789"
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        # The shape of uvicorn's own access line: client, method, path, version, status.
        logger.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "POST",
            f"/approvals/links/{token}?approve=1",
            "1.1",
            200,
        )
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/api/v1/runs", "1.1", 200)
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        '127.0.0.1:5000 - "POST /approvals/links/***?approve=1 HTTP/1.1" 200',
        '127.0.0.1:5000 - "GET /api/v1/runs HTTP/1.1" 200',
    ]
    assert token not in caplog.text
