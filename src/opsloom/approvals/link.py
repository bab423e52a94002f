"""Signed one-time links for deciding from an e-mail.

A link carries a token ``<id>.<signature>``: a random id and the HMAC-SHA256 of it under the
link secret. The signature is checked first (constant time), so forged tokens never reach the
store; the store keeps only the SHA-256 of the token, with the task, the user it was made
for, the decision it makes and when it expires. Using it is single use: the transaction that
marks it used only succeeds once, before it expires. Opening the link (GET) shows a
confirmation page and decides nothing, so mail scanners that follow links do no harm; the
form on that page POSTs the decision.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsloom.approvals.service import Approvals, request_of
from opsloom.approvals.spec import ApprovalLinkError, ApprovalNotFoundError
from opsloom.model.approval import ApprovalLinkRow

if TYPE_CHECKING:
    from opsloom.identity.access import Principal

#: Default lifetime of a link.
LINK_TTL = 24 * 3600.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _sign(secret: str, token_id: str) -> str:
    return _b64(hmac.new(secret.encode(), token_id.encode(), hashlib.sha256).digest())


def token_hash(token: str) -> str:
    """What the store keeps of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_signature(secret: str, token: str) -> None:
    """Raise ``ApprovalLinkError`` unless ``token`` was signed with ``secret``."""
    token_id, _, signature = token.partition(".")
    if not token_id or not signature:
        raise ApprovalLinkError("this approval link is not valid")
    if not hmac.compare_digest(_sign(secret, token_id), signature):
        raise ApprovalLinkError("this approval link is not valid")


@dataclass(frozen=True, slots=True)
class LinkView:
    """What a confirmation page shows."""

    link: ApprovalLinkRow
    request: dict[str, Any]


class ApprovalLinks:
    """Make and redeem one-time links.

    Args:
        approvals: the service that records the decision.
        secret: the signing secret (``OPSLOOM_APPROVAL_LINK_SECRET``); rotate it to void
            every link not yet used.
    """

    def __init__(self, approvals: Approvals, secret: str) -> None:
        if not secret:
            raise ApprovalLinkError("approval links need a signing secret")
        self.approvals = approvals
        self._secret = secret

    async def issue(self, task_id: str, user: str, approve: bool, ttl: float = LINK_TTL) -> str:
        """A new link token for ``user`` to approve (or deny) ``task_id``."""
        store, now = self.approvals.store, self.approvals.clock.now()
        state = await store.get_approval(request_of(task_id))
        if state is None or state.stage(task_id) is None:
            raise ApprovalNotFoundError(f"no approval task {task_id!r}")
        token_id = _b64(os.urandom(18))
        token = f"{token_id}.{_sign(self._secret, token_id)}"
        row = ApprovalLinkRow(
            token_hash(token), state.request.id, task_id, user, approve, now, now + ttl
        )
        await store.save_approval_link(row)
        return token

    async def peek(self, token: str) -> LinkView:
        """The link and its request, for the confirmation page (decides nothing)."""
        check_signature(self._secret, token)
        link = await self.approvals.store.get_approval_link(token_hash(token))
        if link is None:
            raise ApprovalLinkError("this approval link is not valid")
        if link.used_at is not None:
            raise ApprovalLinkError("this approval link was already used")
        if link.expires_at <= self.approvals.clock.now():
            raise ApprovalLinkError("this approval link has expired")
        return LinkView(link, await self.approvals.show(link.request_id))

    async def redeem(self, token: str, comment: str | None = None) -> dict[str, Any]:
        """Use the link: mark it used (once) and record its decision as its user.

        The person's rights are checked as for any decision (assigned, not the requester);
        a link whose decision is refused is used up all the same.
        """
        check_signature(self._secret, token)
        store, clock = self.approvals.store, self.approvals.clock
        link = await store.use_approval_link(token_hash(token), clock.now())
        if link is None:
            raise ApprovalLinkError("this approval link is invalid, expired or already used")
        principal: Principal = await self.approvals.identity.principal(link.user)
        default = "approved from an e-mail link" if link.approve else "denied from an e-mail link"
        return await self.approvals.decide(
            principal, link.stage_id, link.approve, comment or default, via="link"
        )
