"""A loopback Kubernetes API server for the connector tests.

Every request body, every object it stores and every answer it gives is validated against the
resource schemas that the ``kubernetes-validate`` package ships (the strict ones of its latest
Kubernetes version). A patch is a partial object: it is checked against the same schema with
``required`` switched off (every field it sets must exist there, with the right type), and the
object it produces is checked whole. What it answers follows the API reference:

- ``PATCH`` takes only the four patch media types (else 415); a strategic merge patch and a
  JSON merge patch merge maps and delete a key set to ``null`` (lists are replaced, which is
  what both do for the fields touched here); a change of ``spec`` bumps
  ``metadata.generation``;
- the ``scale`` subresource is an ``autoscaling/v1`` ``Scale`` whose ``spec.replicas`` is the
  workload's;
- ``pods/log`` answers ``text/plain`` and wants ``container`` when a pod has several (400);
- errors are ``Status`` objects (``NotFound`` 404, ``Unauthorized`` 401, ...);
- a bearer token is required and checked.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import json
import re
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
from kubernetes_validate import utils as kv
from referencing import Registry, Resource

from opsloom.connectors.testing import Contract, FakeRequest, FakeResponse, FakeVendor

VERSION = kv.latest_version()
_DIR = f"kubernetes-json-schema/v{VERSION}-local-strict"
REVIEW = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
PATCH_TYPES = {
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
}
_Partial = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"required": lambda *args: iter(())}
)


@functools.cache
def _registry() -> Registry:
    definitions = kv.schema_contents(f"{_DIR}/_definitions.json", VERSION)
    return Resource.from_contents(definitions) @ Registry()


@functools.cache
def schema(name: str) -> dict[str, Any]:
    """A resource schema by file stem (``deployment-apps-v1``)."""
    found: dict[str, Any] = kv.schema_contents(f"{_DIR}/{name}.json", VERSION)
    return found


@functools.cache
def _validator(name: str, partial: bool) -> Any:
    kind = _Partial if partial else jsonschema.Draft202012Validator
    return kind(schema(name), registry=_registry())


def problems_of(name: str, value: Any, *, partial: bool = False) -> list[str]:
    """What is wrong with ``value`` as resource ``name`` (a patch when ``partial``)."""
    validator = _validator(name, partial)
    return [
        f"{name} at /{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in validator.iter_errors(value)
    ]


def valid(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` after checking it whole against its kind's schema (the file that
    ``kubernetes_validate.validate`` picks, with the definitions loaded once)."""
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", obj["apiVersion"])
    problems = problems_of(f"{obj['kind'].lower()}-{group}", obj)
    assert not problems, problems
    return obj


def merge(target: Any, patch: Any) -> Any:
    """A JSON merge patch (RFC 7386), also what a strategic merge patch does to maps."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


def status(code: int, reason: str, message: str) -> FakeResponse:
    """A ``Status`` answer, as the API server sends errors."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    assert not problems_of("status-meta-v1", body)
    return FakeResponse(code, body)


_SCHEMA_OF = [
    ("/apis/apps/v1/namespaces/{}/deployments/{}/scale", "scale-autoscaling-v1"),
    ("/apis/apps/v1/namespaces/{}/statefulsets/{}/scale", "scale-autoscaling-v1"),
    ("/apis/apps/v1/namespaces/{}/deployments/{}", "deployment-apps-v1"),
    ("/apis/apps/v1/namespaces/{}/statefulsets/{}", "statefulset-apps-v1"),
    ("/apis/apps/v1/namespaces/{}/daemonsets/{}", "daemonset-apps-v1"),
    ("/api/v1/nodes/{}", "node-v1"),
]


def _schema_for(path: str) -> str | None:
    parts = path.strip("/").split("/")
    for pattern, name in _SCHEMA_OF:
        want = pattern.strip("/").split("/")
        if len(want) != len(parts):
            continue
        if all(w in ("{}", p) for w, p in zip(want, parts, strict=True)):
            return name
    return None


class KubernetesContract(Contract):
    """Patches checked against the schema of the resource they change (see the module)."""

    def check(self, request: FakeRequest) -> list[str]:
        if request.method == "POST" and request.path == REVIEW:
            try:
                return problems_of("selfsubjectreview-authentication-v1", request.json)
            except ValueError:
                return ["the body is not JSON"]
        if request.method != "PATCH":
            return [] if not request.body else ["a body on a request that takes none"]
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        if kind not in PATCH_TYPES:
            return []  # the server answers 415 itself
        name = _schema_for(request.path)
        if name is None:
            return [f"PATCH {request.path}: not a resource this server knows"]
        try:
            patch = request.json
        except ValueError:
            return ["the patch is not JSON"]
        if not isinstance(patch, dict):
            return ["a merge patch is a JSON object"]
        return problems_of(name, patch, partial=True)


def deployment(name: str, namespace: str, replicas: int = 2, **spec: Any) -> dict[str, Any]:
    """A Deployment as the server stores it."""
    return valid(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "generation": 1,
                "uid": f"uid-{name}",
                "resourceVersion": "1",
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": name, "image": f"registry.test/{name}:1"}]},
                },
                **spec,
            },
            "status": {"replicas": replicas, "readyReplicas": replicas},
        }
    )


def pod(
    name: str,
    namespace: str,
    labels: dict[str, str],
    *,
    containers: tuple[str, ...] = ("app",),
    phase: str = "Running",
    node: str = "node-1",
    restarts: int = 0,
) -> dict[str, Any]:
    """A Pod as the server lists it."""
    return valid(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "nodeName": node,
                "containers": [{"name": c, "image": f"registry.test/{c}:1"} for c in containers],
            },
            "status": {
                "phase": phase,
                "podIP": "10.0.0.7",
                "startTime": "2026-12-07T10:00:00Z",
                "containerStatuses": [
                    {
                        "name": c,
                        "ready": phase == "Running",
                        "restartCount": restarts,
                        "image": f"registry.test/{c}:1",
                        "imageID": "",
                    }
                    for c in containers
                ],
            },
        }
    )


def node(name: str) -> dict[str, Any]:
    """A Node."""
    return valid({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {}})


class Cluster:
    """The objects of a fake cluster, served by :meth:`vendor`.

    Args:
        tokens: bearer tokens the server accepts.
        tls: serve HTTPS with this context; one that requires client certificates makes a
            verified certificate enough to be let in (as ``kube-apiserver`` does).
    """

    def __init__(self, tokens: set[str], tls: ssl.SSLContext | None = None) -> None:
        self.tokens = tokens
        self.tls = tls
        self.workloads: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.nodes: dict[str, dict[str, Any]] = {}
        self.logs: dict[tuple[str, str, str], str] = {}
        self.patches: list[tuple[str, str, Any]] = []
        #: Apply the next workload patch but answer 504, as an API server whose write reached
        #: etcd after the request's deadline does (the client never learns it worked).
        self.lose_next_answer = False

    def add(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        if obj["kind"] == "Pod":
            self.pods[(meta["namespace"], meta["name"])] = obj
        elif obj["kind"] == "Node":
            self.nodes[meta["name"]] = obj
        else:
            plural = obj["kind"].lower() + "s"
            self.workloads[(meta["namespace"], plural, meta["name"])] = obj

    def vendor(self) -> FakeVendor:
        """The API server (unstarted)."""
        return FakeVendor(
            KubernetesContract(),
            {
                ("GET", "/version"): self._version,
                ("POST", REVIEW): self._whoami,
                ("GET", "/apis/apps/v1/namespaces/{ns}/{plural}"): self._list_workloads,
                ("GET", "/apis/apps/v1/namespaces/{ns}/{plural}/{name}"): self._get_workload,
                ("PATCH", "/apis/apps/v1/namespaces/{ns}/{plural}/{name}"): self._patch_workload,
                ("PATCH", "/apis/apps/v1/namespaces/{ns}/{plural}/{name}/scale"): self._scale,
                ("GET", "/api/v1/namespaces/{ns}/pods"): self._list_pods,
                ("GET", "/api/v1/namespaces/{ns}/pods/{name}/log"): self._log,
                ("PATCH", "/api/v1/nodes/{name}"): self._patch_node,
            },
            tls=self.tls,
        )

    def _denied(self, request: FakeRequest) -> FakeResponse | None:
        auth = request.headers.get("authorization", "")
        if not auth and self.tls is not None and self.tls.verify_mode == ssl.CERT_REQUIRED:
            return None  # the handshake verified the client's certificate
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return status(401, "Unauthorized", "Unauthorized")
        return None

    def _version(self, request: FakeRequest) -> FakeResponse:
        major, minor, _ = VERSION.split(".")
        return self._denied(request) or FakeResponse(
            200,
            {
                "major": major,
                "minor": minor,
                "gitVersion": f"v{VERSION}",
                "platform": "linux/amd64",
            },
        )

    def _whoami(self, request: FakeRequest) -> FakeResponse:
        denied = self._denied(request)
        if denied:
            return denied
        who = "system:serviceaccount:shop:opsloom"
        if not request.headers.get("authorization"):
            who = "kubernetes-admin"  # the client certificate's common name
        review = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "SelfSubjectReview",
            "metadata": {},
            "status": {"userInfo": {"username": who, "groups": ["system:authenticated"]}},
        }
        return FakeResponse(201, valid(review))

    def _patch_body(self, request: FakeRequest) -> tuple[Any, FakeResponse | None]:
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        if kind not in PATCH_TYPES:
            return None, status(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format "
                f"- accepted media types include: {', '.join(sorted(PATCH_TYPES))}",
            )
        if kind in ("application/json-patch+json", "application/apply-patch+yaml"):
            return None, status(415, "UnsupportedMediaType", f"{kind} is not served by this fake")
        return request.json, None

    def _workload(self, request: FakeRequest) -> tuple[dict[str, Any] | None, FakeResponse | None]:
        p = request.params
        found = self.workloads.get((p["ns"], p["plural"], p["name"]))
        if found is None:
            what = p["plural"].rstrip("s") + ".apps"
            return None, status(404, "NotFound", f'{what} "{p["name"]}" not found')
        return found, None

    def _get_workload(self, request: FakeRequest) -> FakeResponse:
        denied = self._denied(request)
        if denied:
            return denied
        found, error = self._workload(request)
        return error or FakeResponse(200, found)

    def _list_workloads(self, request: FakeRequest) -> FakeResponse:
        denied = self._denied(request)
        if denied:
            return denied
        ns, plural = request.params["ns"], request.params["plural"]
        labels = _selector(request.query.get("labelSelector", [""])[-1])
        items = [
            obj
            for (namespace, kind, _), obj in sorted(self.workloads.items())
            if namespace == ns
            and kind == plural
            and all(test(obj["metadata"].get("labels", {}).get(k)) for k, test in labels)
        ]
        kind = plural[:-1].capitalize().replace("set", "Set") + "List"
        body = {"apiVersion": "apps/v1", "kind": kind, "metadata": {}, "items": items}
        assert not problems_of(f"{kind.lower()}-apps-v1", body), problems_of(
            f"{kind.lower()}-apps-v1", body
        )
        return FakeResponse(200, body)

    def _apply(self, obj: dict[str, Any], patch: Any) -> dict[str, Any]:
        changed = merge(obj, patch)
        if changed.get("spec") != obj.get("spec"):
            changed["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
        version = int(obj["metadata"].get("resourceVersion", "1")) + 1
        changed["metadata"]["resourceVersion"] = str(version)
        return valid(changed)

    def _patching(self, request: FakeRequest) -> tuple[dict[str, Any], Any] | FakeResponse:
        """The workload a patch request names and the patch, or the error answer."""
        found, error = self._workload(request)
        error = self._denied(request) or error
        if error:
            return error
        assert found is not None
        patch, error = self._patch_body(request)
        if error:
            return error
        self.patches.append((request.path, request.headers["content-type"], patch))
        return found, patch

    def _patch_workload(self, request: FakeRequest) -> FakeResponse:
        patching = self._patching(request)
        if isinstance(patching, FakeResponse):
            return patching
        updated = self._apply(*patching)
        self.add(updated)
        if self.lose_next_answer:
            self.lose_next_answer = False
            return status(504, "Timeout", "the server was unable to return a response in time")
        return FakeResponse(200, updated)

    def _scale(self, request: FakeRequest) -> FakeResponse:
        patching = self._patching(request)
        if isinstance(patching, FakeResponse):
            return patching
        found, patch = patching
        meta = found["metadata"]
        current = {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "spec": {"replicas": found["spec"].get("replicas", 1)},
            "status": {"replicas": found.get("status", {}).get("replicas", 0)},
        }
        scaled = merge(current, patch)
        assert not problems_of("scale-autoscaling-v1", scaled)
        self.add(self._apply(found, {"spec": {"replicas": scaled["spec"]["replicas"]}}))
        return FakeResponse(200, scaled)

    def _list_pods(self, request: FakeRequest) -> FakeResponse:
        denied = self._denied(request)
        if denied:
            return denied
        labels = _selector(request.query.get("labelSelector", [""])[-1])
        fields = _selector(request.query.get("fieldSelector", [""])[-1])
        items = []
        for (ns, _), obj in sorted(self.pods.items()):
            if ns != request.params["ns"]:
                continue
            if not all(test(obj["metadata"].get("labels", {}).get(k)) for k, test in labels):
                continue
            if not all(test(_field(obj, k)) for k, test in fields):
                continue
            items.append(obj)
        body = {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}
        assert not problems_of("podlist-v1", body)
        return FakeResponse(200, body)

    def _log(self, request: FakeRequest) -> FakeResponse:
        denied = self._denied(request)
        if denied:
            return denied
        ns, name = request.params["ns"], request.params["name"]
        found = self.pods.get((ns, name))
        if found is None:
            return status(404, "NotFound", f'pods "{name}" not found')
        names = [c["name"] for c in found["spec"]["containers"]]
        container = request.query.get("container", [None])[-1]
        if container is None:
            if len(names) > 1:
                return status(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {name}, "
                    f"choose one of: [{' '.join(names)}]",
                )
            container = names[0]
        if container not in names:
            return status(400, "BadRequest", f"container {container} is not valid for pod {name}")
        lines = self.logs.get((ns, name, container), "").splitlines(keepends=True)
        tail = request.query.get("tailLines")
        if tail:
            lines = lines[-int(tail[-1]) :]
        text = "".join(lines)
        limit = request.query.get("limitBytes")
        if limit:
            text = text.encode()[: int(limit[-1])].decode(errors="ignore")
        return FakeResponse(200, text, {"Content-Type": "text/plain"})

    def _patch_node(self, request: FakeRequest) -> FakeResponse:
        denied = self._denied(request)
        if denied:
            return denied
        name = request.params["name"]
        found = self.nodes.get(name)
        if found is None:
            return status(404, "NotFound", f'nodes "{name}" not found')
        patch, error = self._patch_body(request)
        if error:
            return error
        self.patches.append((request.path, request.headers["content-type"], patch))
        updated = self._apply(found, patch)
        self.add(updated)
        return FakeResponse(200, updated)


def _selector(text: str) -> list[tuple[str, Any]]:
    """Equality-based selector terms (``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``)."""
    terms: list[tuple[str, Any]] = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            terms.append((key, lambda v, w=value: v != w))
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            terms.append((key, lambda v, w=value: v == w))
        elif term.startswith("!"):
            terms.append((term[1:], lambda v: v is None))
        else:
            terms.append((term, lambda v: v is not None))
    return terms


def _field(obj: dict[str, Any], path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def kubeconfig(server: str, token: str, namespace: str = "shop", **user: Any) -> str:
    """A kubeconfig with one context (``test``) on ``server``."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "test",
            "clusters": [{"name": "c", "cluster": {"server": server}}],
            "users": [{"name": "u", "user": user or {"token": token}}],
            "contexts": [
                {"name": "test", "context": {"cluster": "c", "user": "u", "namespace": namespace}}
            ],
        }
    )


@dataclass(frozen=True)
class Pki:
    """A cluster CA, the API server's certificate and a client certificate (PEM)."""

    ca: bytes
    server_cert: bytes
    server_key: bytes
    client_cert: bytes
    client_key: bytes

    def server_context(self, folder: Path, *, client_certificates: bool = True) -> ssl.SSLContext:
        """TLS of the API server: its certificate, and client certificates required (else
        not asked for: callers bring a token)."""
        (folder / "server.pem").write_bytes(self.server_cert + self.server_key)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(folder / "server.pem")
        if client_certificates:
            context.load_verify_locations(cadata=self.ca.decode())
            context.verify_mode = ssl.CERT_REQUIRED
        return context


def make_pki(*, ip: bool = True) -> Pki:
    """A fresh CA; the server certificate names api.cluster.test and (``ip``) 127.0.0.1; the
    client is kubernetes-admin."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def name(common: str, org: str | None = None) -> x509.Name:
        parts = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
        if org:
            parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(parts)

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("kubernetes")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    def issue(subject: x509.Name, server: bool) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        usage = (
            x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
            if server
            else (x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH)
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("api.cluster.test")]
                    + ([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))] if ip else [])
                ),
                critical=False,
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), pem_key(key)

    server_cert, server_key = issue(name("kube-apiserver"), True)
    client_cert, client_key = issue(name("kubernetes-admin", "system:masters"), False)
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    return Pki(ca_pem, server_cert, server_key, client_cert, client_key)
