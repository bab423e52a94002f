"""Kubernetes, workload posture: list the workloads of a namespace with what each container
asks for and runs as, and give containers resource requests and limits.

Actions of the ``kubernetes`` connector (:mod:`opsloom.connectors.builtin.kubernetes` registers
them). A container **may run as root** unless its effective security context (the container's
over the pod's) says ``runAsNonRoot: true`` or a ``runAsUser`` other than 0: the image's own
user is unknown to the API server, which is the rule of the Pod Security Standards'
*restricted* profile.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from opsloom.connectors.builtin.kubernetes import (
    _PLURAL,
    MERGE,
    KubernetesSettings,
    Workload,
    WorkloadRef,
    _namespace,
    _workload_path,
    connector,
)
from opsloom.connectors.sdk import ActionContext
from opsloom.errors import ConnectorPermanentError

_LISTED: tuple[Workload, ...] = ("Deployment", "StatefulSet")


class WorkloadQuery(BaseModel):
    """Which workloads to list."""

    namespace: str | None = Field(default=None, description="Default: the connection's.")
    kinds: list[Workload] = Field(default_factory=lambda: list(_LISTED))
    label_selector: str | None = None


class Container(BaseModel):
    """One container of a workload's pod template."""

    name: str
    image: str | None = None
    requests: dict[str, str] = Field(default_factory=dict)
    limits: dict[str, str] = Field(default_factory=dict)
    may_run_as_root: bool
    privileged: bool = False


class WorkloadInfo(BaseModel):
    """A workload and its containers."""

    name: str
    namespace: str
    kind: str
    replicas: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    containers: list[Container]


class Workloads(BaseModel):
    """The workloads found."""

    workloads: list[WorkloadInfo]


def _as_root(pod: dict[str, Any], container: dict[str, Any]) -> bool:
    own = container.get("securityContext") or {}
    user = own.get("runAsUser", pod.get("runAsUser"))
    non_root = own.get("runAsNonRoot", pod.get("runAsNonRoot"))
    if user == 0:
        return True
    return not (non_root is True or (isinstance(user, int) and user > 0))


def _info(item: dict[str, Any], kind: str) -> WorkloadInfo:
    meta, spec = item.get("metadata", {}), item.get("spec", {})
    pod = spec.get("template", {}).get("spec", {}) or {}
    pod_context = pod.get("securityContext") or {}
    containers = []
    for c in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
        resources = c.get("resources") or {}
        containers.append(
            Container(
                name=c.get("name", ""),
                image=c.get("image"),
                requests={k: str(v) for k, v in (resources.get("requests") or {}).items()},
                limits={k: str(v) for k, v in (resources.get("limits") or {}).items()},
                may_run_as_root=_as_root(pod_context, c),
                privileged=bool((c.get("securityContext") or {}).get("privileged")),
            )
        )
    return WorkloadInfo(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        kind=kind,
        replicas=spec.get("replicas"),
        labels=meta.get("labels") or {},
        containers=containers,
    )


@connector.action
async def list_workloads(ctx: ActionContext[KubernetesSettings], data: WorkloadQuery) -> Workloads:
    """List the Deployments and StatefulSets (or DaemonSets) of a namespace and their
    containers' resources and security contexts."""
    namespace = _namespace(ctx, data.namespace)
    params = {"labelSelector": data.label_selector} if data.label_selector else {}
    found = []
    for kind in data.kinds:
        listed = await ctx.client.json(
            "GET", f"/apis/apps/v1/namespaces/{namespace}/{_PLURAL[kind]}", params=params
        )
        found += [_info(item, kind) for item in listed.get("items") or []]
    return Workloads(workloads=found)


class Resources(WorkloadRef):
    """Requests and limits for containers of a workload that have none."""

    requests: dict[str, str] = Field(default_factory=dict, description='e.g. {"cpu": "100m"}')
    limits: dict[str, str] = Field(min_length=1, description='e.g. {"memory": "512Mi"}')
    containers: list[str] | None = Field(default=None, description="Default: every container.")


class ResourcesSet(BaseModel):
    """Which containers got which values."""

    name: str
    namespace: str
    kind: str
    containers: list[str]


@connector.action
async def set_default_resources(
    ctx: ActionContext[KubernetesSettings], data: Resources
) -> ResourcesSet:
    """Give the containers of a workload the requests and limits they do not set (values a
    container sets are kept). The pods roll, as for any change of the pod template.

    The patch carries the ``resourceVersion`` it was computed from: a workload changed in
    between is refused by the API server (409) instead of being overwritten.
    """
    namespace = _namespace(ctx, data.namespace)
    path = _workload_path(namespace, data.kind, data.name)
    current = await ctx.client.json("GET", path)
    containers = current.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
    if not containers:
        raise ConnectorPermanentError(f"{data.kind.lower()}/{data.name} has no containers")
    changed = []
    for container in containers:
        if data.containers is not None and container.get("name") not in data.containers:
            continue
        resources = container.setdefault("resources", {})
        before = {k: dict(resources.get(k) or {}) for k in ("requests", "limits")}
        for key, defaults in (("requests", data.requests), ("limits", data.limits)):
            if defaults:
                resources[key] = {**defaults, **(resources.get(key) or {})}
        if before != {k: resources.get(k) or {} for k in ("requests", "limits")}:
            changed.append(container["name"])
    if changed:
        version = current.get("metadata", {}).get("resourceVersion")
        patch = {
            "metadata": {"resourceVersion": version},
            "spec": {"template": {"spec": {"containers": containers}}},
        }
        await ctx.client.json("PATCH", path, json=patch, headers={"Content-Type": MERGE})
    return ResourcesSet(name=data.name, namespace=namespace, kind=data.kind, containers=changed)
