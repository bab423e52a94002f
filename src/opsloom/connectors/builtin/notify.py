"""Notify: one message to the long tail of chat and push services, through apprise.

`apprise <https://github.com/caronc/apprise>`_ speaks to some hundred services (Matrix,
Mattermost, Rocket.Chat, Zulip, ntfy, Gotify, Pushover, Signal, Google Chat, Webex, generic
JSON/form/XML webhooks …), each named by a URL such as ``mmost://host/token`` or
``ntfy://topic``; its documentation lists the schemes. A connection holds one or more such
URLs, separated by spaces or commas, as a secret (they carry the services' tokens). Messages
go out through apprise's own clients, under its own timeouts; this connector only shapes the
message and reports each service by apprise's privacy form of its URL (tokens masked).

A message is sent to every URL. When none accepts it the step fails with a retryable error;
when some do, the step succeeds and names the services that failed in ``failed`` (a retry
would notify the others twice).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector
from opsloom.errors import ConnectorRetryableError

if TYPE_CHECKING:
    import apprise

_SPLIT = re.compile(r"[\s,]+")


def split_urls(value: str) -> list[str]:
    """The URLs of a ``urls`` setting (separated by spaces, commas or new lines)."""
    return [url for url in _SPLIT.split(value.strip()) if url]


class NotifySettings(ConnectionSettings):
    """Where messages go: apprise URLs (a secret, since they hold the services' tokens)."""

    urls: SecretStr = Field(description="One or more apprise URLs (mmost://…, ntfy://…).")

    @field_validator("urls")
    @classmethod
    def _known(cls, value: SecretStr) -> SecretStr:
        import apprise

        urls = split_urls(value.get_secret_value())
        if not urls:
            raise ValueError("give at least one apprise URL")
        for index, url in enumerate(urls, 1):
            if apprise.Apprise.instantiate(url) is None:
                # The URL holds a token: name its position and scheme only.
                scheme = url.split("://", 1)[0] if "://" in url else "no scheme"
                raise ValueError(f"URL {index} ({scheme}://…) is not one apprise can use")
        return value


connector = Connector("notify", NotifySettings, title="Notify (apprise)", doc=__doc__ or "")


class Message(BaseModel):
    """A message for every service of the connection."""

    body: str = Field(min_length=1)
    title: str | None = None
    type: Literal["info", "success", "warning", "failure"] = "info"
    format: Literal["text", "markdown", "html"] = Field(
        default="text", description="How body is written; apprise converts it per service."
    )


class Notified(BaseModel):
    """Which services took the message (apprise's privacy form of their URL)."""

    delivered: list[str]
    failed: list[str]


def _name(server: apprise.plugins.NotifyBase) -> str:
    url: str = server.url(privacy=True)  # type: ignore[no-untyped-call]
    return f"{server.service_name} {url.split('?', 1)[0]}"


@connector.action
async def send(ctx: ActionContext[NotifySettings], data: Message) -> Notified:
    """Send a message to every service of the connection (title, body, severity type)."""
    import apprise

    delivered: list[str] = []
    failed: list[str] = []
    for url in split_urls(ctx.settings.urls.get_secret_value()):
        target = apprise.Apprise()
        target.add(url)
        name = ", ".join(_name(server) for server in target) or "an unusable URL"
        sent = await target.async_notify(
            body=data.body,
            title=data.title or "",
            notify_type=apprise.NotifyType(data.type),
            body_format=apprise.NotifyFormat(data.format),
        )
        (delivered if bool(sent) else failed).append(name)
    if not delivered:
        raise ConnectorRetryableError(f"no service took the message: {', '.join(failed)}")
    return Notified(delivered=delivered, failed=failed)
