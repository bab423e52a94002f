"""Kubernetes: rollout restart, scale, get pods, pod logs, cordon and uncordon a node, list
workloads and give them resource limits.

Talks to the API server over the connector HTTP layer (httpx), as the Kubernetes API reference
documents each call, so timeouts, retry classification, the circuit breaker and redaction are
the same as for every connector. Authentication follows ``kubectl``: a kubeconfig (its text as
a secret, or a path on the workers; a context in it) or in-cluster service-account access; see
:mod:`opsloom.connectors.kubeconfig`. The official ``kubernetes`` client is not used: it is
synchronous, and what it would bring beyond plain requests is exactly that configuration
loading.

- ``rollout_restart``: what ``kubectl rollout restart`` does, a strategic merge patch setting
  the pod template annotation ``kubectl.kubernetes.io/restartedAt``; the step's idempotency key
  goes in a second annotation, so a retried step does not restart the workload twice;
- ``scale``: a merge patch of the ``scale`` subresource (``spec.replicas``);
- ``get_pods``: ``GET /api/v1/namespaces/{ns}/pods`` with label and field selectors;
- ``pod_logs``: ``GET .../pods/{name}/log`` (container, tail, since, previous, byte limit);
- ``cordon`` / ``uncordon``: a strategic merge patch of the node's ``spec.unschedulable``;
- ``list_workloads`` and ``set_default_resources``
  (:mod:`~opsloom.connectors.builtin.kubernetes_workloads`): workloads with their containers'
  resources and security contexts; requests and limits for containers that set none.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, model_validator

from opsloom.connectors.kubeconfig import SERVICE_ACCOUNT, KubeAccess, from_kubeconfig, in_cluster
from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector, Endpoint
from opsloom.errors import ConfigurationError, ConnectorPermanentError

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
#: Which step restarted the workload: a retry of the same step finds it and stops there.
RESTART_KEY = "opsloom.dev/restart-key"
STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"

Workload = Literal["Deployment", "StatefulSet", "DaemonSet"]
_PLURAL = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}


class KubernetesSettings(ConnectionSettings):
    """How to reach one cluster: a kubeconfig (text or path) or the pod's service account."""

    kubeconfig: SecretStr | None = Field(
        default=None, description="The kubeconfig's text (kept encrypted)."
    )
    kubeconfig_path: str | None = Field(
        default=None, description="A kubeconfig file on the machines that run workers."
    )
    context: str | None = Field(default=None, description="Kubeconfig context (default: current).")
    in_cluster: bool = Field(
        default=False, description="Use the service account of the pod opsloom runs in."
    )
    service_account_dir: str = Field(
        default=str(SERVICE_ACCOUNT), description="Where the pod's service-account files are."
    )
    server: str | None = Field(
        default=None, description="API server URL; overrides the kubeconfig's or the pod's."
    )
    namespace: str | None = Field(
        default=None, description="Namespace of actions that name none (default: the context's)."
    )

    _access: KubeAccess | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_source(self) -> KubernetesSettings:
        sources = [self.kubeconfig is not None, self.kubeconfig_path is not None, self.in_cluster]
        if sum(sources) != 1:
            raise ValueError("set exactly one of kubeconfig, kubeconfig_path or in_cluster")
        return self

    def access(self) -> KubeAccess:
        """Where the API server is and how to authenticate (read once per connection)."""
        if self._access is None:
            self._access = self._load()
        return self._access

    def _load(self) -> KubeAccess:
        if self.in_cluster:
            access = in_cluster(Path(self.service_account_dir), server=self.server)
        else:
            if self.kubeconfig is not None:
                text, folder, where = self.kubeconfig.get_secret_value(), None, "the kubeconfig"
            else:
                assert self.kubeconfig_path is not None
                path = Path(self.kubeconfig_path).expanduser()
                try:
                    text = path.read_text()
                except OSError as exc:
                    raise ConfigurationError(
                        f"cannot read kubeconfig {path}: {exc.strerror}"
                    ) from None
                folder, where = path.parent, f"kubeconfig {path}"
            access = from_kubeconfig(text, context=self.context, folder=folder, where=where)
            if self.server:
                access.server = self.server.rstrip("/")
        if self.namespace:
            access.namespace = self.namespace
        return access


def _endpoint(settings: KubernetesSettings) -> Endpoint:
    access = settings.access()
    return Endpoint(
        access.server,
        {"Accept": "application/json"},
        redact=access.secrets,
        verify=access.verify,
        auth=access.auth,
    )


connector = Connector(
    "kubernetes",
    KubernetesSettings,
    title="Kubernetes",
    endpoint=_endpoint,
    doc=__doc__ or "",
)


def _namespace(ctx: ActionContext[KubernetesSettings], given: str | None) -> str:
    if given:
        return given
    if ctx.settings.namespace:
        return ctx.settings.namespace
    return ctx.settings.access().namespace or "default"


class WorkloadRef(BaseModel):
    """A Deployment, StatefulSet or DaemonSet by name."""

    name: str = Field(min_length=1)
    kind: Workload = "Deployment"
    namespace: str | None = Field(default=None, description="Default: the connection's.")


class Restarted(BaseModel):
    """The workload whose pods are being replaced."""

    name: str
    namespace: str
    kind: str
    restarted_at: str
    generation: int | None = None
    already: bool = Field(default=False, description="This step had restarted it before.")


class Scale(WorkloadRef):
    """How many replicas a Deployment or StatefulSet should run."""

    kind: Literal["Deployment", "StatefulSet"] = "Deployment"
    replicas: int = Field(ge=0)


class Scaled(BaseModel):
    """The scale subresource after the change."""

    name: str
    namespace: str
    kind: str
    replicas: int
    current_replicas: int | None = None


class PodQuery(BaseModel):
    """Which pods to list."""

    namespace: str | None = Field(default=None, description="Default: the connection's.")
    label_selector: str | None = Field(default=None, description="e.g. app=checkout,tier!=db")
    field_selector: str | None = Field(default=None, description="e.g. status.phase=Running")
    limit: int | None = Field(default=None, ge=1, le=5000)


class Pod(BaseModel):
    """A pod, in the terms ``kubectl get pods`` shows."""

    name: str
    namespace: str
    phase: str
    node: str | None = None
    ip: str | None = None
    ready: str = Field(description="Ready containers of all, e.g. 1/2.")
    restarts: int = 0
    containers: list[str] = Field(default_factory=list)
    started_at: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class Pods(BaseModel):
    """The pods found."""

    pods: list[Pod]


class LogQuery(BaseModel):
    """Which log lines of a pod to read."""

    name: str = Field(min_length=1, description="The pod.")
    namespace: str | None = Field(default=None, description="Default: the connection's.")
    container: str | None = Field(default=None, description="Needed when the pod has several.")
    tail_lines: int | None = Field(default=200, ge=1)
    since_seconds: int | None = Field(default=None, ge=1)
    previous: bool = Field(default=False, description="The previous (crashed) container's log.")
    limit_bytes: int = Field(default=256 * 1024, ge=1, le=16 * 1024 * 1024)
    timestamps: bool = False


class Logs(BaseModel):
    """The log text."""

    name: str
    namespace: str
    container: str | None
    text: str
    lines: int


class NodeRef(BaseModel):
    """A node by name."""

    node: str = Field(min_length=1)


class NodeState(BaseModel):
    """Whether the node takes new pods."""

    node: str
    unschedulable: bool


def _workload_path(namespace: str, kind: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/{_PLURAL[kind]}/{name}"


def _now(ctx: ActionContext[Any]) -> str:
    moment = datetime.fromtimestamp(ctx.now(), tz=UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


@connector.action
async def rollout_restart(ctx: ActionContext[KubernetesSettings], data: WorkloadRef) -> Restarted:
    """Restart a workload's pods gradually, as ``kubectl rollout restart`` does.

    A retry of the same step that finds its own restart already applied does not restart the
    workload again. A paused Deployment is refused (resume it first), as kubectl does.
    """
    namespace = _namespace(ctx, data.namespace)
    path = _workload_path(namespace, data.kind, data.name)
    current = await ctx.client.json("GET", path)
    template = current.get("spec", {}).get("template", {}).get("metadata", {}) or {}
    annotations = template.get("annotations") or {}
    key = ctx.idempotency_key
    if key is not None and annotations.get(RESTART_KEY) == key:
        return Restarted(
            name=data.name,
            namespace=namespace,
            kind=data.kind,
            restarted_at=annotations.get(RESTARTED_AT, ""),
            generation=current.get("metadata", {}).get("generation"),
            already=True,
        )
    if current.get("spec", {}).get("paused"):
        raise ConnectorPermanentError(
            f"{data.kind.lower()}/{data.name} in {namespace} is paused: "
            "resume its rollout before restarting it"
        )
    stamp = _now(ctx)
    wanted = {RESTARTED_AT: stamp, **({RESTART_KEY: key} if key is not None else {})}
    patch = {"spec": {"template": {"metadata": {"annotations": wanted}}}}
    answer = await ctx.client.json("PATCH", path, json=patch, headers={"Content-Type": STRATEGIC})
    return Restarted(
        name=data.name,
        namespace=namespace,
        kind=data.kind,
        restarted_at=stamp,
        generation=answer.get("metadata", {}).get("generation"),
    )


@connector.action
async def scale(ctx: ActionContext[KubernetesSettings], data: Scale) -> Scaled:
    """Set the number of replicas of a Deployment or StatefulSet (its scale subresource)."""
    namespace = _namespace(ctx, data.namespace)
    answer = await ctx.client.json(
        "PATCH",
        _workload_path(namespace, data.kind, data.name) + "/scale",
        json={"spec": {"replicas": data.replicas}},
        headers={"Content-Type": MERGE},
    )
    return Scaled(
        name=data.name,
        namespace=namespace,
        kind=data.kind,
        replicas=answer.get("spec", {}).get("replicas", data.replicas),
        current_replicas=answer.get("status", {}).get("replicas"),
    )


def _query(**values: str | int | bool | None) -> dict[str, str | int]:
    """Query parameters as the API takes them; those not given (``None``, false) left out."""
    return {
        name: "true" if value is True else value
        for name, value in values.items()
        if value is not None and value is not False
    }


def _pod(item: dict[str, Any]) -> Pod:
    meta, spec, status = item.get("metadata", {}), item.get("spec", {}), item.get("status", {})
    statuses = status.get("containerStatuses") or []
    containers = [c.get("name", "") for c in spec.get("containers") or []]
    ready = sum(1 for c in statuses if c.get("ready"))
    return Pod(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        phase=status.get("phase", "Unknown"),
        node=spec.get("nodeName"),
        ip=status.get("podIP"),
        ready=f"{ready}/{len(containers)}",
        restarts=sum(int(c.get("restartCount", 0)) for c in statuses),
        containers=containers,
        started_at=status.get("startTime"),
        labels=meta.get("labels") or {},
    )


@connector.action
async def get_pods(ctx: ActionContext[KubernetesSettings], data: PodQuery) -> Pods:
    """List the pods of a namespace, optionally by label and field selectors."""
    namespace = _namespace(ctx, data.namespace)
    params = _query(
        labelSelector=data.label_selector, fieldSelector=data.field_selector, limit=data.limit
    )
    found = await ctx.client.json("GET", f"/api/v1/namespaces/{namespace}/pods", params=params)
    return Pods(pods=[_pod(item) for item in found.get("items") or []])


@connector.action
async def pod_logs(ctx: ActionContext[KubernetesSettings], data: LogQuery) -> Logs:
    """Read the log of a pod's container (the last lines, or since some seconds)."""
    namespace = _namespace(ctx, data.namespace)
    params = _query(
        limitBytes=data.limit_bytes,
        container=data.container,
        tailLines=data.tail_lines,
        sinceSeconds=data.since_seconds,
        previous=data.previous,
        timestamps=data.timestamps,
    )
    response = await ctx.client.request(
        "GET",
        f"/api/v1/namespaces/{namespace}/pods/{data.name}/log",
        params=params,
        headers={"Accept": "text/plain, application/json"},
    )
    text = response.text
    return Logs(
        name=data.name,
        namespace=namespace,
        container=data.container,
        text=text,
        lines=len(text.splitlines()),
    )


async def _schedulable(ctx: ActionContext[KubernetesSettings], node: str, off: bool) -> NodeState:
    answer = await ctx.client.json(
        "PATCH",
        f"/api/v1/nodes/{node}",
        json={"spec": {"unschedulable": off or None}},
        headers={"Content-Type": STRATEGIC},
    )
    return NodeState(node=node, unschedulable=bool(answer.get("spec", {}).get("unschedulable")))


@connector.action
async def cordon(ctx: ActionContext[KubernetesSettings], data: NodeRef) -> NodeState:
    """Mark a node unschedulable: running pods stay, no new pod is placed on it."""
    return await _schedulable(ctx, data.node, True)


@connector.action
async def uncordon(ctx: ActionContext[KubernetesSettings], data: NodeRef) -> NodeState:
    """Mark a node schedulable again."""
    return await _schedulable(ctx, data.node, False)


REVIEW = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


@connector.connection_check
async def _check(ctx: ActionContext[KubernetesSettings]) -> str:
    # /version answers anyone; a SelfSubjectReview (Kubernetes 1.28+) proves the credentials
    # and says whose they are, as ``kubectl auth whoami`` does.
    version = await ctx.client.json("GET", "/version")
    where = f"Kubernetes {version.get('gitVersion', '?')} at {ctx.settings.access().server}"
    review = await ctx.client.request(
        "POST",
        REVIEW,
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        ok=(404,),
    )
    if review.status_code == 404:
        return f"{where} (too old to say who the credentials belong to)"
    user = review.json().get("status", {}).get("userInfo", {})
    return f"{where} as {user.get('username', '?')}"


# The workload posture actions (list workloads, default resources) register here too.
from opsloom.connectors.builtin import kubernetes_workloads  # noqa: E402, F401
