"""How a Kubernetes connection reaches and authenticates to its API server.

Two sources, as ``kubectl`` and client-go know them:

- a **kubeconfig** (its text, kept as a connection secret, or a path on the workers): the
  context chosen (``current-context`` by default) names a cluster (``server``,
  ``certificate-authority[-data]``, ``insecure-skip-tls-verify``, ``tls-server-name``) and a
  user (``token``, ``tokenFile``, ``client-certificate[-data]`` + ``client-key[-data]``, or an
  ``exec`` credential plugin such as ``aws eks get-token`` or ``gke-gcloud-auth-plugin``);
  relative file paths are taken from the kubeconfig's folder;
- **in-cluster**: the pod's service account, from ``KUBERNETES_SERVICE_HOST`` /
  ``KUBERNETES_SERVICE_PORT`` and the files under
  ``/var/run/secrets/kubernetes.io/serviceaccount`` (``token``, ``ca.crt``, ``namespace``).

Tokens that change (a projected service-account token is rotated by the kubelet; an exec
plugin's credential expires) are read by :class:`KubeAuth` when a request needs them, not
once: the file again after a minute, the plugin again at its ``expirationTimestamp`` or when
the server answers 401.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import tempfile
import time
from collections.abc import AsyncGenerator, Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from opsloom.errors import ConfigurationError

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
#: client-go reads a token file again after this many seconds.
TOKEN_FILE_REFRESH = 60.0
#: An exec credential is fetched again this long before it expires.
EXPIRY_MARGIN = 30.0


@dataclass(slots=True)
class KubeAccess:
    """Everything a client needs: where the API server is, how to trust it, who we are.

    Attributes:
        server: the API server's base URL.
        namespace: the namespace of the context (or the pod), when it names one.
        verify: TLS trust (and the client certificate, if any).
        auth: adds the bearer token to each request (``None``: certificate only).
        secrets: token and key material to mask in anything shown.
    """

    server: str
    namespace: str | None
    verify: bool | ssl.SSLContext
    auth: KubeAuth | None
    secrets: tuple[str, ...] = ()


@dataclass(slots=True)
class ExecPlugin:
    """A kubeconfig ``user.exec``: a command that prints an ``ExecCredential``."""

    command: str
    args: list[str]
    env: dict[str, str]
    api_version: str
    cwd: Path | None


@dataclass(slots=True)
class KubeAuth(httpx.Auth):
    """Bearer token of each request: fixed, from a file read again periodically, or from an
    exec plugin run again when its credential expires or the server answers 401."""

    token: str | None = None
    token_file: Path | None = None
    plugin: ExecPlugin | None = None
    _expires: float = 0.0
    _lock: asyncio.Lock | None = field(default=None, repr=False)

    def _cached(self) -> str | None:
        if self.token is not None and (self._expires == 0.0 or time.time() < self._expires):
            return self.token
        return None

    def _read_file(self) -> str:
        assert self.token_file is not None
        try:
            token = self.token_file.read_text().strip()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the Kubernetes token file {self.token_file}: {exc.strerror}"
            ) from None
        self.token, self._expires = token, time.time() + TOKEN_FILE_REFRESH
        return token

    async def _current(self, *, fresh: bool = False) -> str | None:
        if not fresh and (cached := self._cached()) is not None:
            return cached
        if self.token_file is not None:
            return self._read_file()
        if self.plugin is None:
            return self.token
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not fresh and (cached := self._cached()) is not None:
                return cached
            self.token, self._expires = await run_plugin(self.plugin)
            return self.token

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, Any, None]:
        if self.plugin is not None:
            raise ConfigurationError("an exec credential plugin needs the async client")
        token = self._read_file() if self.token_file is not None else self.token
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._current()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401 and (self.plugin or self.token_file):
            # The credential may have been revoked or rotated early: fetch it again, once.
            token = await self._current(fresh=True)
            if token:
                request.headers["Authorization"] = f"Bearer {token}"
                yield request


async def run_plugin(plugin: ExecPlugin) -> tuple[str, float]:
    """Run an exec credential plugin; its token and expiry (epoch seconds, 0: none)."""
    info = {
        "apiVersion": plugin.api_version,
        "kind": "ExecCredential",
        "spec": {"interactive": False},
    }
    env = {**os.environ, **plugin.env, "KUBERNETES_EXEC_INFO": json.dumps(info)}
    try:
        process = await asyncio.create_subprocess_exec(
            plugin.command,
            *plugin.args,
            env=env,
            cwd=plugin.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise ConfigurationError(
            f"cannot run the kubeconfig exec plugin {plugin.command!r}: {exc.strerror}"
        ) from None
    out, err = await process.communicate()
    if process.returncode != 0:
        raise ConfigurationError(
            f"the kubeconfig exec plugin {plugin.command!r} exited with {process.returncode}: "
            f"{err.decode(errors='replace').strip()[-300:]}"
        )
    try:
        status = json.loads(out)["status"]
        token = str(status["token"])
    except (ValueError, KeyError, TypeError):
        raise ConfigurationError(
            f"the kubeconfig exec plugin {plugin.command!r} did not print an ExecCredential "
            "with status.token"
        ) from None
    expires = 0.0
    stamp = status.get("expirationTimestamp")
    if stamp:
        when = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
        expires = when.timestamp() - EXPIRY_MARGIN
    return token, expires


def from_kubeconfig(
    text: str, *, context: str | None, folder: Path | None, where: str
) -> KubeAccess:
    """The access a kubeconfig gives for ``context`` (default: its ``current-context``).

    Raises:
        ConfigurationError: not a kubeconfig, or the context, cluster or user is missing or
            incomplete (naming which).
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        config = YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise ConfigurationError(f"{where} is not YAML: {exc}") from None
    if not isinstance(config, dict):
        raise ConfigurationError(f"{where} is not a kubeconfig (expected a mapping)")
    name = context or config.get("current-context")
    if not name:
        raise ConfigurationError(f"{where} has no current-context; set the connection's context")
    ctx = _named(config, "contexts", "context", name, where)
    cluster = _named(config, "clusters", "cluster", ctx.get("cluster"), where)
    user = _named(config, "users", "user", ctx.get("user"), where) if ctx.get("user") else {}
    server = cluster.get("server")
    if not server:
        raise ConfigurationError(f"cluster {ctx.get('cluster')!r} of {where} has no server")
    secrets: list[str] = []
    verify: bool | ssl.SSLContext
    if cluster.get("insecure-skip-tls-verify"):
        verify = False
    else:
        ca = _material(cluster, "certificate-authority", folder, where)
        context_ = ssl.create_default_context(cadata=ca.decode() if ca else None)
        if ca is None:
            context_.load_default_certs()
        verify = context_
        if cluster.get("tls-server-name"):
            # httpx takes the name to check from the URL; a kubeconfig may name another.
            verify.check_hostname = False
    cert = _material(user, "client-certificate", folder, where)
    key = _material(user, "client-key", folder, where)
    if (cert is None) != (key is None):
        raise ConfigurationError(
            f"user {ctx.get('user')!r} of {where} needs both client-certificate and client-key"
        )
    if cert is not None and key is not None:
        if verify is False:
            verify = ssl.create_default_context()
            verify.check_hostname = False
            verify.verify_mode = ssl.CERT_NONE
        assert isinstance(verify, ssl.SSLContext)
        _load_chain(verify, cert, key)
        secrets.append(key.decode(errors="replace").strip())
    auth = None
    if user.get("token"):
        token = str(user["token"])
        auth = KubeAuth(token=token)
        secrets.append(token)
    elif user.get("tokenFile"):
        auth = KubeAuth(token_file=_path(str(user["tokenFile"]), folder))
    elif user.get("exec"):
        auth = KubeAuth(plugin=_plugin(user["exec"], folder, where))
    elif user.get("auth-provider"):
        raise ConfigurationError(
            f"user {ctx.get('user')!r} of {where} uses an auth-provider, which Kubernetes "
            "removed; use an exec plugin (e.g. gke-gcloud-auth-plugin, kubelogin)"
        )
    return KubeAccess(str(server).rstrip("/"), ctx.get("namespace"), verify, auth, tuple(secrets))


def in_cluster(
    folder: Path = SERVICE_ACCOUNT, env: Mapping[str, str] | None = None, server: str | None = None
) -> KubeAccess:
    """The pod's own service account (see the module docstring).

    Raises:
        ConfigurationError: not in a pod (no service host variables, no token file).
    """
    env = os.environ if env is None else env
    if server is None:
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
        if not host or not port:
            raise ConfigurationError(
                "in-cluster Kubernetes access needs KUBERNETES_SERVICE_HOST and "
                "KUBERNETES_SERVICE_PORT (set in every pod); not running in a cluster?"
            )
        server = f"https://{f'[{host}]' if ':' in host else host}:{port}"
    token_file = folder / "token"
    if not token_file.is_file():
        raise ConfigurationError(f"no service-account token at {token_file}")
    ca = folder / "ca.crt"
    verify = ssl.create_default_context(cafile=str(ca)) if ca.is_file() else True
    namespace_file = folder / "namespace"
    namespace = namespace_file.read_text().strip() if namespace_file.is_file() else None
    auth = KubeAuth(token_file=token_file)
    return KubeAccess(server.rstrip("/"), namespace, verify, auth)


def _named(config: dict[str, Any], section: str, key: str, name: Any, where: str) -> Any:
    for entry in config.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(key)
            if isinstance(value, dict):
                return value
    known = ", ".join(str(e.get("name")) for e in config.get(section) or [] if isinstance(e, dict))
    raise ConfigurationError(f"{where} has no {key} {name!r} (known: {known or 'none'})")


def _path(value: str, folder: Path | None) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() or folder is None else folder / path


def _material(section: dict[str, Any], name: str, folder: Path | None, where: str) -> bytes | None:
    data = section.get(f"{name}-data")
    if data:
        try:
            return base64.b64decode(str(data), validate=True)
        except ValueError:
            raise ConfigurationError(f"{name}-data of {where} is not base64") from None
    file = section.get(name)
    if not file:
        return None
    path = _path(str(file), folder)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {name} {path} of {where}: {exc.strerror}") from None


def _load_chain(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    # ssl loads a certificate chain only from files: a private folder, removed at once.
    with tempfile.TemporaryDirectory(prefix="opsloom-kube-") as folder:
        cert_file, key_file = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert_file.write_bytes(cert)
        key_file.touch(mode=0o600)
        key_file.write_bytes(key)
        try:
            context.load_cert_chain(cert_file, key_file)
        except ssl.SSLError as exc:
            raise ConfigurationError(
                f"the kubeconfig's client certificate and key do not load: {exc.reason}"
            ) from None


def _plugin(spec: Any, folder: Path | None, where: str) -> ExecPlugin:
    if not isinstance(spec, dict) or not spec.get("command"):
        raise ConfigurationError(f"the exec plugin of {where} has no command")
    env = {
        str(item["name"]): str(item["value"])
        for item in spec.get("env") or []
        if isinstance(item, dict) and "name" in item
    }
    command = str(spec["command"])
    if "/" in command and folder is not None:
        command = str(_path(command, folder))
    return ExecPlugin(
        command,
        [str(a) for a in spec.get("args") or []],
        env,
        str(spec.get("apiVersion") or "client.authentication.k8s.io/v1"),
        folder,
    )
