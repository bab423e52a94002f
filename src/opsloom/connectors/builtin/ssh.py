"""SSH: run a command on a host whose key is pinned (asyncssh).

A connection names the host, the user, a private key (or a password) and the host's public
key(s) as ``ssh-keyscan`` or a ``known_hosts`` line prints them, or their ``SHA256:``
fingerprints as ``ssh-keygen -lf`` prints them. The host must present one of the pinned keys
(and prove it holds its private half): any other key is refused before a credential is sent,
with an error naming the fingerprint the server presented and the pinned ones (a moved or
re-installed host, or someone in the middle). There is no "accept any key" setting.

Errors: a refused or unreachable host, a timeout or a dropped connection is retried; a wrong
host key, refused credentials, or (with ``check``, the default) a non-zero exit status fails
the step. A command runs at least once: a step retried after the connection dropped mid-run
runs it again, so write commands that are safe to repeat.
"""

from __future__ import annotations

import shlex
from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector
from opsloom.errors import ConfigurationError, ConnectorPermanentError, ConnectorRetryableError

_KEY_TYPES = ("ssh-", "ecdsa-", "sk-")


class SshSettings(ConnectionSettings):
    """A host, its pinned key(s), and how to log in."""

    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    username: str = Field(min_length=1)
    host_keys: list[str] = Field(
        min_length=1,
        description="The host's public keys ('ssh-ed25519 AAAA…', as ssh-keyscan prints) "
        "or their fingerprints ('SHA256:…').",
    )
    private_key: SecretStr | None = Field(default=None, description="OpenSSH or PEM key text.")
    passphrase: SecretStr | None = None
    password: SecretStr | None = None

    @field_validator("host_keys", mode="before")
    @classmethod
    def _lines(cls, value: Any) -> Any:
        return value.splitlines() if isinstance(value, str) else value

    @field_validator("host_keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        keys = []
        for line in value:
            words = line.split()
            if not words or line.lstrip().startswith("#"):
                continue
            if len(words) == 1 and words[0].startswith("SHA256:"):
                keys.append(words[0])
                continue
            # A known_hosts line starts with the host pattern(s): keep the key part.
            while words and not words[0].startswith(_KEY_TYPES):
                words = words[1:]
            if len(words) < 2:
                raise ValueError(f"not an SSH public key: {line[:60]!r}")
            keys.append(f"{words[0]} {words[1]}")
        if not keys:
            raise ValueError("pin at least one host key")
        return keys

    @model_validator(mode="after")
    def _credential(self) -> SshSettings:
        if self.private_key is None and self.password is None:
            raise ValueError("set private_key or password")
        return self


connector = Connector("ssh", SshSettings, title="SSH", doc=__doc__ or "")


class Run(BaseModel):
    """A command line, as a shell on the host would run it."""

    command: str = Field(min_length=1)
    stdin: str | None = Field(default=None, description="Text fed to the command's input.")
    timeout: float = Field(default=300, gt=0, le=86400, description="Seconds the command may run.")
    check: bool = Field(default=True, description="Fail the step on a non-zero exit status.")
    max_output: int = Field(
        default=64 * 1024, ge=1, le=8 * 1024 * 1024, description="Characters kept of each stream."
    )


class Ran(BaseModel):
    """How the command ended and what it printed."""

    exit_status: int | None
    signal: str | None = None
    stdout: str
    stderr: str
    truncated: bool = False


def _pinned(settings: SshSettings) -> set[str]:
    """The fingerprints of the pinned host keys."""
    import asyncssh

    prints = set()
    for line in settings.host_keys:
        if line.startswith("SHA256:"):
            prints.add(line)
            continue
        try:
            prints.add(str(asyncssh.import_public_key(line).get_fingerprint("sha256")))
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise ConfigurationError(f"a pinned host key does not load: {exc}") from None
    return prints


def _pinning(pinned: set[str]) -> Any:
    """An asyncssh client that trusts exactly the pinned host keys and notes what it saw."""
    import asyncssh

    class Pinning(asyncssh.SSHClient):
        presented: str | None = None

        def validate_host_public_key(self, host: str, addr: str, port: int, key: Any) -> bool:
            # asyncssh then checks that the server holds the key's private half.
            self.presented = str(key.get_fingerprint("sha256"))
            return self.presented in pinned

    return Pinning()


def _client_keys(settings: SshSettings) -> list[Any] | None:
    import asyncssh

    if settings.private_key is None:
        return None
    passphrase = settings.passphrase.get_secret_value() if settings.passphrase else None
    try:
        return [asyncssh.import_private_key(settings.private_key.get_secret_value(), passphrase)]
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ConfigurationError(f"the private key does not load: {exc}") from None


async def _connect(settings: SshSettings, where: str) -> Any:
    import asyncssh

    pinned = _pinned(settings)
    client = _pinning(pinned)
    try:
        return await asyncssh.connect(
            settings.host,
            settings.port,
            username=settings.username,
            client_keys=_client_keys(settings),
            password=settings.password.get_secret_value() if settings.password else None,
            # No key is trusted up front: each one the host presents goes to the client.
            known_hosts=([], [], []),
            client_factory=lambda: client,
            agent_path=None,
            config=[],
            connect_timeout=min(settings.timeout, 30.0),
            login_timeout=settings.timeout,
        )
    except asyncssh.HostKeyNotVerifiable:
        raise ConnectorPermanentError(
            f"{where}: the host key does not match the pinned key: the server presented "
            f"{client.presented or 'no usable key'}, the connection pins "
            f"{', '.join(sorted(pinned))} (check the host, then update host_keys from "
            "ssh-keyscan)"
        ) from None
    except asyncssh.PermissionDenied:
        raise ConnectorPermanentError(
            f"{where}: {settings.username!r} was refused (wrong key or password)"
        ) from None
    except (OSError, TimeoutError, asyncssh.Error) as exc:
        raise ConnectorRetryableError(f"{where}: {type(exc).__name__}: {exc}") from None


def _cut(text: str | bytes | None, limit: int) -> tuple[str, bool]:
    if text is None:
        return "", False
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    if len(text) <= limit:
        return text, False
    return text[-limit:], True


@connector.action
async def run(ctx: ActionContext[SshSettings], data: Run) -> Ran:
    """Run a command on the host; its exit status, output and error output."""
    import asyncssh

    settings = ctx.settings
    where = f"ssh {settings.username}@{settings.host}:{settings.port}"
    connection = await _connect(settings, where)
    try:
        async with connection:
            done = await connection.run(
                data.command, input=data.stdin, check=False, timeout=data.timeout
            )
    except asyncssh.TimeoutError as exc:
        raise ConnectorRetryableError(
            f"{where}: {shlex.split(data.command)[0]!r} ran over {data.timeout:g}s "
            f"(output so far: {_cut(exc.stdout, 300)[0]!r})"
        ) from None
    except (OSError, asyncssh.Error) as exc:
        raise ConnectorRetryableError(f"{where}: {type(exc).__name__}: {exc}") from None
    stdout, cut_out = _cut(done.stdout, data.max_output)
    stderr, cut_err = _cut(done.stderr, data.max_output)
    status = done.exit_status
    signal = done.exit_signal[0] if done.exit_signal else None
    if data.check and status != 0:
        ending = f"signal {signal}" if signal else f"exit status {status}"
        raise ConnectorPermanentError(
            f"{where}: the command ended with {ending}: {stderr.strip()[-500:] or stdout[-300:]}"
        )
    return Ran(
        exit_status=status,
        signal=signal,
        stdout=stdout,
        stderr=stderr,
        truncated=cut_out or cut_err,
    )


@connector.connection_check
async def _check(ctx: ActionContext[SshSettings]) -> str:
    settings = ctx.settings
    where = f"ssh {settings.username}@{settings.host}:{settings.port}"
    connection = await _connect(settings, where)
    async with connection:
        version = connection.get_extra_info("server_version")
    return f"{where}: logged in, host key pinned ({version})"
