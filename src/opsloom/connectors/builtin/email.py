"""E-mail over SMTP (aiosmtplib): a text message with an optional HTML alternative.

Speaks SMTP to the connection's server (implicit TLS on 465, STARTTLS when the server offers
it, or plain on a trusted relay). The ``Message-ID`` is derived from the step's idempotency
key, so a message sent again by a retried step carries the same id and mail systems can drop
the duplicate. A refused connection, a timeout or a 4xx reply is retried; a 5xx reply (unknown
recipient, rejected sender) fails the step.
"""

from __future__ import annotations

import uuid
from email.message import EmailMessage
from email.utils import formatdate

from pydantic import BaseModel, Field, SecretStr

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector
from opsloom.errors import ConnectorPermanentError, ConnectorRetryableError


class EmailSettings(ConnectionSettings):
    """An SMTP server and the sender address."""

    host: str
    port: int = Field(default=587, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = Field(default=False, description="Implicit TLS (port 465).")
    starttls: bool | None = Field(default=None, description="None: when the server offers it.")
    from_address: str = Field(description="Sender, e.g. 'opsloom <ops@acme.test>'.")


connector = Connector("email", EmailSettings, title="E-mail (SMTP)", doc=__doc__ or "")


class Email(BaseModel):
    """A message: plain text, and HTML for clients that show it."""

    to: list[str] = Field(min_length=1)
    cc: list[str] | None = None
    subject: str = Field(min_length=1, max_length=998)
    text: str
    html: str | None = None
    reply_to: str | None = None


class Sent(BaseModel):
    """The message as handed to the server."""

    message_id: str
    recipients: list[str]


def build(settings: EmailSettings, data: Email, key: str | None, now: float) -> EmailMessage:
    """The MIME message for ``data`` (multipart/alternative when there is HTML)."""
    message = EmailMessage()
    message["From"] = settings.from_address
    message["To"] = ", ".join(data.to)
    if data.cc:
        message["Cc"] = ", ".join(data.cc)
    if data.reply_to:
        message["Reply-To"] = data.reply_to
    message["Subject"] = data.subject
    message["Date"] = formatdate(now, usegmt=True)
    local = (key or uuid.uuid4().hex).replace(":", ".")
    message["Message-ID"] = f"<{local}@opsloom>"
    message.set_content(data.text)
    if data.html is not None:
        message.add_alternative(data.html, subtype="html")
    return message


@connector.action
async def send_email(ctx: ActionContext[EmailSettings], data: Email) -> Sent:
    """Send an e-mail (text, with an optional HTML alternative)."""
    import aiosmtplib

    settings = ctx.settings
    message = build(settings, data, ctx.idempotency_key, ctx.now())
    recipients = [*data.to, *(data.cc or [])]
    password = settings.password.get_secret_value() if settings.password else None
    try:
        await aiosmtplib.send(
            message,
            hostname=settings.host,
            port=settings.port,
            username=settings.username,
            password=password,
            use_tls=settings.tls,
            start_tls=settings.starttls,
            timeout=settings.timeout,
        )
    except aiosmtplib.SMTPResponseException as exc:
        kind = ConnectorPermanentError if exc.code >= 500 else ConnectorRetryableError
        raise kind(f"SMTP {settings.host} refused: {exc.code} {exc.message}") from None
    except aiosmtplib.SMTPRecipientsRefused as exc:
        refused = ", ".join(r.recipient for r in exc.recipients)
        raise ConnectorPermanentError(
            f"SMTP {settings.host} refused recipients: {refused}"
        ) from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise ConnectorRetryableError(
            f"SMTP {settings.host}: {type(exc).__name__}: {exc}"
        ) from None
    return Sent(message_id=str(message["Message-ID"]), recipients=recipients)
