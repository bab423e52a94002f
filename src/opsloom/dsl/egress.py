"""Where documents' outbound calls may go: an optional allow list and deny list of hosts.

Against server-side request forgery: a document (or a redirect it follows) must not reach the
cloud metadata service, the database or an admin port on the worker's network. Entries are
host names with ``*`` wildcards (``*.internal``, ``api.example.com``) or IP networks in CIDR
form (``169.254.0.0/16``, ``10.0.0.0/8``, ``::1/128``). A host in the deny list is refused;
with an allow list, a host must be in it. Every request is checked, redirects included. Names
are matched as written, not resolved: to keep documents off internal addresses, allow the
external hosts they need rather than deny internal names one by one.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from opsloom.expr.problem import TaskError

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Hosts that outbound calls may (``allow``, when not empty) and may not (``deny``) reach."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    @classmethod
    def of(cls, allow: Sequence[str], deny: Sequence[str]) -> EgressPolicy:
        for entry in (*allow, *deny):
            _network(entry)  # a malformed CIDR is refused when the settings are read
        return cls(tuple(allow), tuple(deny))

    def __bool__(self) -> bool:
        return bool(self.allow or self.deny)

    def permits(self, host: str) -> bool:
        """Whether a call may go to ``host``."""
        if any(_matches(entry, host) for entry in self.deny):
            return False
        return not self.allow or any(_matches(entry, host) for entry in self.allow)

    async def check(self, request: httpx.Request) -> None:
        """An httpx request hook: refuse a request to a host this policy does not permit."""
        host = request.url.host
        if not self.permits(host):
            raise TaskError.standard(
                "configuration",
                f"outbound calls to {host!r} are not allowed here "
                "(OPSLOOM_EGRESS_ALLOW / OPSLOOM_EGRESS_DENY)",
                title="Destination not allowed",
            )

    def guard(self, client: httpx.AsyncClient) -> httpx.AsyncClient:
        """``client`` with :meth:`check` run before each of its requests (when there are rules)."""
        if self:
            hooks = client.event_hooks
            hooks.setdefault("request", []).append(self.check)
            client.event_hooks = hooks
        return client


def _network(entry: str) -> _Network | None:
    if "/" not in entry:
        return None
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        raise ValueError(f"egress entry {entry!r} is not a valid IP network") from None


def _matches(entry: str, host: str) -> bool:
    network = _network(entry)
    if network is None:
        return fnmatch.fnmatchcase(host.lower(), entry.lower())
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.version == network.version and address in network
