"""The Kubernetes connector against a loopback API server that validates every request body
(and everything it stores and answers) with the schemas ``kubernetes-validate`` ships."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kube_fake import (
    Cluster,
    KubernetesContract,
    deployment,
    kubeconfig,
    make_pki,
    node,
    pod,
    problems_of,
)

from opsloom import App, Context, FakeClock
from opsloom.cli.connectors import settings_from_options
from opsloom.connectors.builtin import kubernetes as k8s
from opsloom.connectors.testing import FakeRequest, FakeResponse
from opsloom.errors import (
    ConfigurationError,
    ConnectorError,
    ConnectorPermanentError,
    InputError,
    RateLimitedError,
)

TOKEN = "kube-token-0123456789"


@pytest.fixture
def cluster() -> Iterator[tuple[Cluster, str]]:
    c = Cluster({TOKEN})
    c.add(deployment("checkout", "shop", replicas=3))
    c.add(deployment("frozen", "shop", paused=True))
    c.add(pod("checkout-1", "shop", {"app": "checkout"}, restarts=2))
    c.add(pod("checkout-2", "shop", {"app": "checkout"}, phase="Pending"))
    c.add(pod("search-1", "shop", {"app": "search"}, containers=("app", "sidecar")))
    c.add(pod("checkout-9", "other", {"app": "checkout"}))
    c.add(node("node-1"))
    c.logs[("shop", "checkout-1", "app")] = "".join(f"line {i}\n" for i in range(1, 11))
    vendor = c.vendor()
    with vendor:
        c.server = vendor  # type: ignore[attr-defined]
        yield c, vendor.url
    assert vendor.problems == []


async def _connect(ops: App, url: str, name: str = "k8s", **extra: object) -> None:
    await ops.connections.add_connection(
        name, "kubernetes", {"kubeconfig": kubeconfig(url, TOKEN), **extra}
    )


async def test_kubernetes__rollout_restart_patches_the_template_annotation_once_per_step(
    ops: App, cluster: tuple[Cluster, str]
) -> None:
    c, url = cluster
    await _connect(ops, url)
    found = await ops.connections.test_connection("k8s")
    assert found.startswith("Kubernetes v1.") and found.endswith(
        "as system:serviceaccount:shop:opsloom"
    )
    first = await ops.connections.call(
        k8s.rollout_restart, "k8s", {"name": "checkout"}, idempotency_key="run-7:2"
    )
    assert first["namespace"] == "shop" and first["already"] is False
    assert first["generation"] == 2
    stored = c.workloads[("shop", "deployments", "checkout")]
    annotations = stored["spec"]["template"]["metadata"]["annotations"]
    assert annotations[k8s.RESTARTED_AT] == first["restarted_at"]
    assert annotations[k8s.RESTART_KEY] == "run-7:2"
    [(path, kind, patch)] = c.patches
    assert path == "/apis/apps/v1/namespaces/shop/deployments/checkout"
    assert kind == "application/strategic-merge-patch+json"
    assert set(patch["spec"]["template"]["metadata"]["annotations"]) == {
        k8s.RESTARTED_AT,
        k8s.RESTART_KEY,
    }
    # The same step retried: no second restart.
    again = await ops.connections.call(
        k8s.rollout_restart, "k8s", {"name": "checkout"}, idempotency_key="run-7:2"
    )
    assert again["already"] is True and again["restarted_at"] == first["restarted_at"]
    assert len(c.patches) == 1
    # Another step restarts again.
    await ops.connections.call(
        k8s.rollout_restart, "k8s", {"name": "checkout"}, idempotency_key="run-7:5"
    )
    assert len(c.patches) == 2 and stored is not c.workloads[("shop", "deployments", "checkout")]


async def test_kubernetes__a_step_whose_answer_was_lost_restarts_only_once(
    fresh: App, clock: FakeClock, cluster: tuple[Cluster, str]
) -> None:
    c, url = cluster

    @fresh.workflow(name="restart-checkout")
    async def restart(ctx: Context) -> dict[str, Any]:
        return await ctx.step(k8s.rollout_restart, connection="k8s", name="checkout")

    c.lose_next_answer = True
    async with fresh:
        await _connect(fresh, url)
        handle = await fresh.start("restart-checkout")
        for _ in range(400):  # the retry waits on a durable timer: move the clock along
            run = await fresh.get_run(handle.run_id)
            if run.status.value in ("completed", "failed"):
                break
            clock.advance(1.5)
            await asyncio.sleep(0.025)
        out = await handle.result(timeout=10)
        run = await fresh.get_run(handle.run_id)
    assert out["already"] is True and len(c.patches) == 1
    assert run.steps[0].attempts == 2
    template = c.workloads[("shop", "deployments", "checkout")]["spec"]["template"]
    assert template["metadata"]["annotations"][k8s.RESTART_KEY].startswith(f"{handle.run_id}:")


REMEDIATION = """
document: {dsl: '1.0.3', namespace: ops, name: drain-and-restart, version: '1.0.0'}
do:
  - cordon:
      call: kubernetes-cordon:1.0.0@default
      with:
        connection: k8s
        node: ${ .node }
  - restart:
      call: kubernetes-rollout-restart:1.0.0@default
      with:
        connection: k8s
        name: ${ $workflow.input.service }
  - grow:
      call: kubernetes-scale:1.0.0@default
      with:
        connection: k8s
        name: ${ $workflow.input.service }
        replicas: 4
  - pods:
      call: kubernetes-get-pods:1.0.0@default
      with:
        connection: k8s
        label_selector: ${ "app=" + $workflow.input.service }
"""


async def test_kubernetes__a_document_calls_the_actions_as_catalog_functions(
    fresh: App, cluster: tuple[Cluster, str]
) -> None:
    from opsloom.dsl.runtime import DslOptions, DslRuntime

    c, url = cluster
    runtime = DslRuntime(fresh, DslOptions())
    async with fresh:
        await _connect(fresh, url)
        workflow = runtime.register(runtime.load(REMEDIATION), REMEDIATION)
        handle = await fresh.start(workflow, {"node": "node-1", "service": "checkout"})
        out = await handle.result(timeout=20)
    assert [p["name"] for p in out["pods"]] == ["checkout-1", "checkout-2"]
    assert c.nodes["node-1"]["spec"]["unschedulable"] is True
    deployment = c.workloads[("shop", "deployments", "checkout")]
    assert deployment["spec"]["replicas"] == 4
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations[k8s.RESTART_KEY].startswith(f"{handle.run_id}:")


async def test_kubernetes__restart_refuses_a_paused_or_missing_deployment(
    ops: App, cluster: tuple[Cluster, str]
) -> None:
    c, url = cluster
    await _connect(ops, url)
    with pytest.raises(ConnectorPermanentError, match="paused: resume"):
        await ops.connections.call(k8s.rollout_restart, "k8s", {"name": "frozen"})
    with pytest.raises(ConnectorPermanentError, match=r'HTTP 404.*deployment.apps \\"nope'):
        await ops.connections.call(k8s.rollout_restart, "k8s", {"name": "nope"})
    with pytest.raises(ConnectorPermanentError, match="kind"):
        await ops.connections.call(k8s.rollout_restart, "k8s", {"name": "x", "kind": "Pod"})
    assert c.patches == []


async def test_kubernetes__scale_patches_the_scale_subresource(
    ops: App, cluster: tuple[Cluster, str]
) -> None:
    c, url = cluster
    await _connect(ops, url)
    out = await ops.connections.call(
        k8s.scale, "k8s", {"name": "checkout", "namespace": "shop", "replicas": 5}
    )
    assert out == {
        "name": "checkout",
        "namespace": "shop",
        "kind": "Deployment",
        "replicas": 5,
        "current_replicas": 3,
    }
    [(path, kind, patch)] = c.patches
    assert path.endswith("/deployments/checkout/scale")
    assert kind == "application/merge-patch+json" and patch == {"spec": {"replicas": 5}}
    assert c.workloads[("shop", "deployments", "checkout")]["spec"]["replicas"] == 5
    with pytest.raises(ConnectorPermanentError, match="replicas"):
        await ops.connections.call(k8s.scale, "k8s", {"name": "checkout", "replicas": -1})


async def test_kubernetes__get_pods_by_label_and_field(
    ops: App, cluster: tuple[Cluster, str]
) -> None:
    _, url = cluster
    await _connect(ops, url)
    out = await ops.connections.call(k8s.get_pods, "k8s", {"label_selector": "app=checkout"})
    assert [p["name"] for p in out["pods"]] == ["checkout-1", "checkout-2"]
    first = out["pods"][0]
    assert first["ready"] == "1/1" and first["restarts"] == 2 and first["node"] == "node-1"
    running = await ops.connections.call(
        k8s.get_pods,
        "k8s",
        {"label_selector": "app=checkout", "field_selector": "status.phase=Running"},
    )
    assert [p["name"] for p in running["pods"]] == ["checkout-1"]
    elsewhere = await ops.connections.call(k8s.get_pods, "k8s", {"namespace": "other"})
    assert [p["name"] for p in elsewhere["pods"]] == ["checkout-9"]


async def test_kubernetes__kubeconfig_given_as_json_on_the_command_line(
    ops: App, cluster: tuple[Cluster, str]
) -> None:
    # `opsloom connections add k8s -c kubernetes --set kubeconfig={...}` parses the JSON; the
    # connection keeps it as the kubeconfig's text.
    _, url = cluster
    values = settings_from_options([f"kubeconfig={kubeconfig(url, TOKEN)}"], None, None)
    assert isinstance(values["kubeconfig"], dict)
    await ops.connections.add_connection("k8s", "kubernetes", values)
    out = await ops.connections.call(k8s.get_pods, "k8s", {"label_selector": "app=checkout"})
    assert [p["name"] for p in out["pods"]] == ["checkout-1", "checkout-2"]


async def test_kubernetes__pod_logs_tail_and_container(
    ops: App, cluster: tuple[Cluster, str]
) -> None:
    _, url = cluster
    await _connect(ops, url)
    out = await ops.connections.call(k8s.pod_logs, "k8s", {"name": "checkout-1", "tail_lines": 3})
    assert out["text"] == "line 8\nline 9\nline 10\n" and out["lines"] == 3
    with pytest.raises(ConnectorPermanentError, match="choose one of: \\[app sidecar\\]"):
        await ops.connections.call(k8s.pod_logs, "k8s", {"name": "search-1"})
    out = await ops.connections.call(
        k8s.pod_logs, "k8s", {"name": "search-1", "container": "sidecar"}
    )
    assert out["text"] == "" and out["container"] == "sidecar"


async def test_kubernetes__cordon_and_uncordon_a_node(
    ops: App, cluster: tuple[Cluster, str]
) -> None:
    c, url = cluster
    await _connect(ops, url)
    out = await ops.connections.call(k8s.cordon, "k8s", {"node": "node-1"})
    assert out == {"node": "node-1", "unschedulable": True}
    assert c.nodes["node-1"]["spec"]["unschedulable"] is True
    out = await ops.connections.call(k8s.uncordon, "k8s", {"node": "node-1"})
    assert out == {"node": "node-1", "unschedulable": False}
    assert "unschedulable" not in c.nodes["node-1"]["spec"]
    assert [p[2] for p in c.patches] == [
        {"spec": {"unschedulable": True}},
        {"spec": {"unschedulable": None}},
    ]
    with pytest.raises(ConnectorPermanentError, match="404"):
        await ops.connections.call(k8s.cordon, "k8s", {"node": "node-404"})


async def test_kubernetes__in_cluster_service_account_with_a_rotated_token(
    ops: App, cluster: tuple[Cluster, str], tmp_path: Path
) -> None:
    c, url = cluster
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(TOKEN)
    (account / "namespace").write_text("shop\n")
    await ops.connections.add_connection(
        "pod",
        "kubernetes",
        {"in_cluster": True, "service_account_dir": str(account), "server": url},
    )
    out = await ops.connections.call(k8s.get_pods, "pod", {"label_selector": "app=search"})
    assert [p["name"] for p in out["pods"]] == ["search-1"]
    # The kubelet rotates the token; the old one stops working.
    c.tokens = {"rotated-token-abcdef"}
    (account / "token").write_text("rotated-token-abcdef")
    out = await ops.connections.call(k8s.get_pods, "pod", {"label_selector": "app=search"})
    assert [p["name"] for p in out["pods"]] == ["search-1"]
    assert c.server.requests[-1].headers["authorization"] == "Bearer rotated-token-abcdef"  # type: ignore[attr-defined]


async def test_kubernetes__kubeconfig_file_with_a_token_file_beside_it(
    ops: App, cluster: tuple[Cluster, str], tmp_path: Path
) -> None:
    _, url = cluster
    (tmp_path / "kube").mkdir()
    (tmp_path / "kube" / "ops.token").write_text(TOKEN + "\n")
    config = tmp_path / "kube" / "config"
    # A relative tokenFile is taken from the kubeconfig's folder, as kubectl does.
    config.write_text(kubeconfig(url, "", namespace="other", tokenFile="ops.token"))
    await ops.connections.add_connection("file", "kubernetes", {"kubeconfig_path": str(config)})
    out = await ops.connections.call(k8s.get_pods, "file", {})
    assert [p["name"] for p in out["pods"]] == ["checkout-9"]  # the context's namespace


async def test_kubernetes__exec_credential_plugin(
    ops: App, cluster: tuple[Cluster, str], tmp_path: Path
) -> None:
    _, url = cluster
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": TOKEN, "expirationTimestamp": "2999-01-01T00:00:00Z"},
    }
    script = (
        "import json, os, sys; "
        "info = json.loads(os.environ['KUBERNETES_EXEC_INFO']); "
        "assert info['kind'] == 'ExecCredential', info; "
        f"print(json.dumps({credential!r}))"
    )
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": ["-c", script],
            "interactiveMode": "Never",
        }
    }
    await ops.connections.add_connection(
        "eks", "kubernetes", {"kubeconfig": kubeconfig(url, "", **user)}
    )
    out = await ops.connections.call(k8s.cordon, "eks", {"node": "node-1"})
    assert out["unschedulable"] is True


async def test_kubernetes__a_wrong_token_fails_and_is_never_shown(
    ops: App, cluster: tuple[Cluster, str]
) -> None:
    _, url = cluster
    await ops.connections.add_connection(
        "bad", "kubernetes", {"kubeconfig": kubeconfig(url, "wrong-token-987654")}
    )
    with pytest.raises(ConnectorPermanentError, match="HTTP 401") as caught:
        await ops.connections.call(k8s.get_pods, "bad", {})
    assert "wrong-token-987654" not in str(caught.value)
    shown = json.dumps(await ops.connections.connection("bad"))
    assert "wrong-token" not in shown and shown.count("kubeconfig") == 1


async def test_kubernetes__throttled_answers_are_retried_after_the_servers_delay(
    ops: App, cluster: tuple[Cluster, str]
) -> None:
    c, url = cluster
    await _connect(ops, url)
    c.server.fail_next(  # type: ignore[attr-defined]
        FakeResponse(429, {"kind": "Status", "code": 429}, {"Retry-After": "7"})
    )
    with pytest.raises(RateLimitedError) as caught:
        await ops.connections.call(k8s.get_pods, "k8s", {})
    assert caught.value.retry_after == 7


async def test_kubernetes__settings_and_kubeconfig_problems_are_named(
    ops: App, cluster: tuple[Cluster, str]
) -> None:
    _, url = cluster
    with pytest.raises(InputError, match="exactly one of"):
        await ops.connections.add_connection("x", "kubernetes", {})
    await ops.connections.add_connection(
        "ctx", "kubernetes", {"kubeconfig": kubeconfig(url, TOKEN), "context": "prod"}
    )
    with pytest.raises(ConfigurationError, match="no context 'prod' \\(known: test\\)"):
        await ops.connections.call(k8s.get_pods, "ctx", {})


def test_kubernetes_contract__catches_a_patch_the_schema_does_not_allow() -> None:
    contract = KubernetesContract()

    def patch(path: str, body: object) -> list[str]:
        request = FakeRequest(
            "PATCH",
            path,
            {},
            {"content-type": "application/strategic-merge-patch+json"},
            json.dumps(body).encode(),
        )
        return contract.check(request)

    path = "/apis/apps/v1/namespaces/shop/deployments/checkout"
    assert patch(path, {"spec": {"template": {"metadata": {"annotations": {"a": "b"}}}}}) == []
    assert patch(path, {"spec": {"replicas": "three"}})
    assert patch(path, {"spec": {"template": {"metadata": {"annotation": {"a": "b"}}}}})
    assert patch("/api/v1/nodes/n", {"spec": {"unschedulable": "yes"}})
    assert problems_of("scale-autoscaling-v1", {"spec": {"replicas": 1}}, partial=True) == []


async def test_kubernetes__client_certificate_and_cluster_ca_over_tls(
    ops: App, tmp_path: Path
) -> None:
    pki = make_pki()
    c = Cluster(set(), tls=pki.server_context(tmp_path))
    c.add(node("node-7"))

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    with c.vendor() as server:
        assert server.url.startswith("https://")
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "admin",
            "clusters": [
                {
                    "name": "kind",
                    "cluster": {
                        "server": server.url,
                        "certificate-authority-data": b64(pki.ca),
                    },
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate-data": b64(pki.client_cert),
                        "client-key-data": b64(pki.client_key),
                    },
                }
            ],
            "contexts": [{"name": "admin", "context": {"cluster": "kind", "user": "admin"}}],
        }
        await ops.connections.add_connection(
            "tls", "kubernetes", {"kubeconfig": json.dumps(config)}
        )
        out = await ops.connections.call(k8s.cordon, "tls", {"node": "node-7"})
        assert out["unschedulable"] is True
        assert (await ops.connections.test_connection("tls")).endswith("as kubernetes-admin")
        # Without the client certificate the server ends the handshake; with another CA the
        # server is not trusted. Both fail the call.
        config["users"][0]["user"] = {"token": "no-certificate"}  # type: ignore[index]
        await ops.connections.add_connection(
            "nocert", "kubernetes", {"kubeconfig": json.dumps(config)}
        )
        with pytest.raises(ConnectorError):
            await ops.connections.call(k8s.cordon, "nocert", {"node": "node-7"})
        other = make_pki()
        config["clusters"][0]["cluster"]["certificate-authority-data"] = b64(other.ca)  # type: ignore[index]
        await ops.connections.add_connection(
            "otherca", "kubernetes", {"kubeconfig": json.dumps(config)}
        )
        with pytest.raises(ConnectorPermanentError, match="certificate verify failed"):
            await ops.connections.call(k8s.cordon, "otherca", {"node": "node-7"})
    assert server.problems == []


async def test_kubernetes__tls_server_name_is_the_name_the_certificate_must_carry(
    ops: App, tmp_path: Path
) -> None:
    pki = make_pki(ip=False)  # the certificate names api.cluster.test only
    c = Cluster({TOKEN}, tls=pki.server_context(tmp_path, client_certificates=False))
    c.add(node("node-8"))
    with c.vendor() as server:
        config = json.loads(kubeconfig(server.url, TOKEN))
        cluster = config["clusters"][0]["cluster"]
        cluster["certificate-authority-data"] = base64.b64encode(pki.ca).decode()
        await ops.connections.add_connection(
            "byip", "kubernetes", {"kubeconfig": json.dumps(config)}
        )
        with pytest.raises(ConnectorPermanentError, match=r"127\.0\.0\.1"):
            await ops.connections.call(k8s.cordon, "byip", {"node": "node-8"})
        cluster["tls-server-name"] = "api.cluster.test"
        await ops.connections.add_connection(
            "byname", "kubernetes", {"kubeconfig": json.dumps(config)}
        )
        out = await ops.connections.call(k8s.cordon, "byname", {"node": "node-8"})
        assert out["unschedulable"] is True


def test_in_cluster__server_from_the_pods_environment(tmp_path: Path) -> None:
    from opsloom.connectors.kubeconfig import in_cluster

    (tmp_path / "token").write_text(TOKEN)
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    access = in_cluster(tmp_path, env=env)
    assert access.server == "https://10.96.0.1:443" and access.namespace is None
    six = in_cluster(tmp_path, env={**env, "KUBERNETES_SERVICE_HOST": "fd00::1"})
    assert six.server == "https://[fd00::1]:443"
    with pytest.raises(ConfigurationError, match="not running in a cluster"):
        in_cluster(tmp_path, env={})
    with pytest.raises(ConfigurationError, match="no service-account token"):
        in_cluster(tmp_path / "missing", env=env)
