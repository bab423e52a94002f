"""The compliance runbook against real peers: TLS servers with generated certificates, AWS as
moto serves it, a Kubernetes API server fake (schemas of ``kubernetes-validate``), a local git
repository holding the desired state, and the Jira fake (Jira's own spec).

The estate has one finding of each kind: what the decision table calls low risk is fixed on
its own (SSH open to the internet, a public bucket, a workload without limits, replicas that
drifted from git), what it calls high risk is ticketed, and the fix of one (HTTPS open to the
internet) waits for an approval. Every check leaves an evidence event, and ``opsloom events
export`` hands an audit period's evidence over as JSON or CSV.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from examples.runbooks.compliance import EVIDENCE, WORKFLOW, ComplianceSettings, install
from kube_fake import Cluster, deployment, kubeconfig, valid
from test_aws import KEYS, REGION, client, moto_url, no_machine_credentials  # noqa: F401
from test_incident_runbook import until
from typer.testing import CliRunner
from vendors import jira_fake

from opsloom import App, WorkerOptions
from opsloom.cli.main import cli
from opsloom.connectors.testing import FakeVendor
from opsloom.identity.access import Identity
from opsloom.services.event import export_events

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from peers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

KUBE_TOKEN = "kube-token-compliance"


# --- TLS: real servers with generated certificates -------------------------------------------


def certificate(folder: Path, name: str, days: float) -> ssl.SSLContext:
    """A server context with a self-signed certificate for 127.0.0.1 valid ``days`` more."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=300))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    pem = folder / f"{name}.pem"
    pem.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem)
    return context


async def tls_server(context: ssl.SSLContext) -> asyncio.Server:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)


def endpoint(server: asyncio.Server) -> str:
    return f"127.0.0.1:{server.sockets[0].getsockname()[1]}"


# --- AWS: moto in server mode (test_aws's server, client and credentials) ---------------------


class Aws(NamedTuple):
    url: str
    ec2: Any
    s3: Any
    groups: dict[str, str]  # name -> id


@pytest.fixture
def aws(moto_url: str, client: Any) -> Aws:  # noqa: F811 - test_aws's fixtures
    """An account with SSH and HTTPS open to the internet, a database port open inside the
    network, a bucket public by mistake and one public on purpose."""
    httpx.post(f"{moto_url}/moto-api/reset").raise_for_status()
    ec2, s3 = client("ec2"), client("s3")
    groups = {}
    for name, port, cidr in (
        ("bastion", 22, "0.0.0.0/0"),
        ("web", 443, "0.0.0.0/0"),
        ("database", 5432, "10.0.0.0/8"),
    ):
        group = ec2.create_security_group(GroupName=name, Description=name)["GroupId"]
        ec2.authorize_security_group_ingress(
            GroupId=group,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": port,
                    "ToPort": port,
                    "IpRanges": [{"CidrIp": cidr}],
                }
            ],
        )
        groups[name] = group
    location = {"LocationConstraint": REGION}
    for bucket in ("acme-site", "acme-leaky", "acme-private"):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration=location)
    s3.put_bucket_acl(Bucket="acme-site", ACL="public-read")
    s3.put_bucket_tagging(
        Bucket="acme-site", Tagging={"TagSet": [{"Key": "exposure", "Value": "public"}]}
    )
    s3.put_bucket_acl(Bucket="acme-leaky", ACL="public-read")
    return Aws(moto_url, ec2, s3, groups)


def open_rules(aws: Aws, group: str) -> list[dict[str, Any]]:
    [found] = aws.ec2.describe_security_groups(GroupIds=[aws.groups[group]])["SecurityGroups"]
    return [r for p in found["IpPermissions"] for r in p.get("IpRanges", [])]


# --- Kubernetes and the desired state in git --------------------------------------------------


def workload(name: str, replicas: int, *, limits: bool, user: int | None, image: int = 1) -> Any:
    found = deployment(name, "shop", replicas=replicas)
    [container] = found["spec"]["template"]["spec"]["containers"]
    container["image"] = f"registry.test/{name}:{image}"
    if limits:
        container["resources"] = {"limits": {"cpu": "1", "memory": "1Gi"}}
    if user is not None:
        container["securityContext"] = {"runAsUser": user, "runAsNonRoot": user > 0}
    return valid(found)


def manifest(name: str, replicas: int, image: int = 1, namespace: str = "shop") -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: {name}, image: "registry.test/{name}:{image}"}}]
"""


def git_repo(folder: Path) -> Path:
    """The desired state: checkout as it runs, search at 4 replicas (the cluster runs 2),
    legacy at image 2 (the cluster runs 1), billing (not in the cluster), and a ConfigMap."""
    repo = folder / "gitops"
    (repo / "k8s").mkdir(parents=True)
    (repo / "k8s" / "checkout.yaml").write_text(manifest("checkout", 3))
    (repo / "k8s" / "search.yaml").write_text(manifest("search", 4))
    (repo / "k8s" / "legacy.yaml").write_text(
        manifest("legacy", 1, image=2)
        + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
    )
    (repo / "k8s" / "billing.yml").write_text(manifest("billing", 2))
    (repo / "README.md").write_text("not a manifest\n")

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    git("init", "--quiet", "--initial-branch", "main")
    git("add", ".")
    git(
        "-c",
        "user.name=ops",
        "-c",
        "user.email=ops@acme.test",
        "commit",
        "--quiet",
        "-m",
        "desired",
    )
    return repo


class Estate(NamedTuple):
    tls: list[str]
    aws: Aws
    cluster: Cluster
    kube: FakeVendor
    jira: FakeVendor
    repo: Path


@pytest.fixture
async def estate(tmp_path: Path, aws: Aws) -> AsyncIterator[Estate]:
    cluster = Cluster({KUBE_TOKEN})
    cluster.add(workload("checkout", 3, limits=True, user=1000))
    cluster.add(workload("search", 2, limits=False, user=1000))
    cluster.add(workload("legacy", 1, limits=True, user=None))
    soon = await tls_server(certificate(tmp_path, "soon", days=3))
    later = await tls_server(certificate(tmp_path, "later", days=400))
    closed = f"127.0.0.1:{free_port()}"  # nothing listens: the check cannot read a certificate
    with ExitStack() as stack:
        kube = stack.enter_context(cluster.vendor())
        jira = stack.enter_context(jira_fake())
        try:
            yield Estate(
                [endpoint(soon), endpoint(later), closed],
                aws,
                cluster,
                kube,
                jira,
                git_repo(tmp_path),
            )
        finally:
            for server in (soon, later):
                server.close()
                await server.wait_closed()
    assert kube.problems == jira.problems == []


async def connect(app: App, estate: Estate, kube_token: str = KUBE_TOKEN) -> None:
    add = app.connections.add_connection
    await add("aws", "aws", {"region": REGION, "endpoint_url": estate.aws.url, **KEYS})
    await add("kubernetes", "kubernetes", {"kubeconfig": kubeconfig(estate.kube.url, kube_token)})
    jira = {"site_url": estate.jira.url, "email": "bot@acme.test", "api_token": "t0k3n"}
    await add("jira", "jira", jira)
    identity = Identity(app.store, app.clock)
    for user, group in (("carol", "security-leads"), ("dave", "ciso")):
        await identity.add_user(user, roles=("approver",), actor="test")
        await identity.add_to_group(user, group, actor="test")


def responder(db_url: str) -> App:
    return App(db_url, worker=WorkerOptions(poll_seconds=0.05, grace_seconds=5))


def tickets(jira: FakeVendor) -> list[dict[str, Any]]:
    return [r.json["fields"] for r in jira.requests if r.path == "/rest/api/3/issue"]


def comments(jira: FakeVendor) -> list[str]:
    return [json.dumps(r.json) for r in jira.requests if r.path.endswith("/comment")]


async def test_compliance__low_risk_fixed_high_risk_ticketed_approved_fix_applied_evidence_exported(
    db_url: str, estate: Estate
) -> None:
    app = responder(db_url)
    install(
        app,
        ComplianceSettings(
            schedule=None,
            tls_endpoints=tuple(estate.tls),
            namespaces=("shop",),
            desired_repo=str(estate.repo),
        ),
    )
    async with app:
        await connect(app, estate)
        started = time.time()
        handle = await app.start(WORKFLOW)
        pending = await until("the approval", lambda: app.approvals.requests(status="pending"))
        assert pending[0]["title"] == "Apply 1 high-risk compliance fix(es)"
        assert open_rules(estate.aws, "web")  # nothing happens to it before the approval
        carol = await Identity(app.store, app.clock).principal("carol")
        await app.approvals.decide(carol, pending[0]["stages"][0]["task"], True, "not a website")
        output = await handle.result(timeout=60)
        evidence = await export_events(app, type=EVIDENCE, since=started - 1, until=time.time() + 1)

    # Low risk, fixed on its own: SSH closed, the leaky bucket blocked, limits and replicas set.
    assert open_rules(estate.aws, "bastion") == []
    block = estate.aws.s3.get_public_access_block(Bucket="acme-leaky")
    assert all(block["PublicAccessBlockConfiguration"].values())
    assert open_rules(estate.aws, "database") == [{"CidrIp": "10.0.0.0/8"}]  # not the internet
    search = estate.cluster.workloads[("shop", "deployments", "search")]
    assert search["spec"]["replicas"] == 4
    [container] = search["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"}
    assert container["image"] == "registry.test/search:1"  # the rest of the container is kept
    # High risk with a fix: approved, then applied, and the ticket says so.
    assert open_rules(estate.aws, "web") == []
    assert any("approved by carol" in c for c in comments(estate.jira))
    # High risk without a fix: tickets.
    summaries = sorted(t["summary"] for t in tickets(estate.jira))
    assert summaries == sorted(
        [
            f"[compliance] tls-certificate: {estate.tls[0]}",
            f"[compliance] tls-endpoint: {estate.tls[2]}",
            f"[compliance] security-group: {estate.aws.groups['web']} tcp/443-443 from 0.0.0.0/0",
            "[compliance] workload-root: deployment/legacy in shop",
            "[compliance] config-drift: deployment/legacy in shop",
            "[compliance] config-drift: deployment/billing in shop",
        ]
    )
    expiring = next(t for t in tickets(estate.jira) if "tls-certificate" in t["summary"])
    assert expiring["priority"] == {"name": "Highest"} and "compliance" in expiring["labels"]
    assert output["outcomes"] == {"fixed": 4, "ticketed": 5, "fixed after approval": 1}
    assert output["approval"] == {"status": "approved", "decided_by": "carol"}

    # Evidence: one event per check and target, passed ones included.
    data = [e.event.data for e in evidence]
    assert len(data) == output["checked"] == output["passed"] + output["failed"]
    by_target = {(d["check"], d["target"]): d for d in data}
    later = by_target[("tls-certificate", estate.tls[1])]
    assert later["passed"] is True and 398 <= later["observed"]["days_left"] <= 400
    assert by_target[("s3-bucket", "acme-site")]["passed"] is True  # public on purpose
    assert by_target[("s3-bucket", "acme-leaky")]["outcome"] == "fixed"
    drift = by_target[("config-drift", "deployment/checkout in shop")]
    assert drift["passed"] is True and len(drift["observed"]["commit"]) == 40
    web = next(d for d in data if d["target"].startswith(estate.aws.groups["web"]))
    assert web["outcome"] == "fixed after approval" and web["decided_by"] == "carol"
    assert web["ticket"].startswith("OPS-") or web["ticket"]


async def export_cli(db_url: str, *args: str) -> str:
    """``opsloom events export`` (in a thread: the command runs its own event loop)."""
    command = ["events", "export", "--type", EVIDENCE, *args, "--db", db_url]
    done = await asyncio.to_thread(CliRunner().invoke, cli, command)
    assert done.exit_code == 0, done.output
    return done.stdout


async def test_compliance__nobody_answers_escalates_then_denied_and_a_check_that_cannot_run(
    db_url: str, estate: Estate
) -> None:
    app = responder(db_url)
    install(
        app,
        ComplianceSettings(schedule=None, namespaces=("shop",), approval_sla=1.0),
    )
    async with app:
        await connect(app, estate, kube_token="revoked-token")  # the cluster refuses it
        output = await app.result((await app.start(WORKFLOW)).run_id, timeout=60)
        [request] = await app.approvals.requests()
    # The approval went to security-leads, then to the CISO, then was denied at the SLA.
    assert output["approval"] == {"status": "denied", "decided_by": "sla"}
    [stage] = request["stages"]
    assert stage["escalations"] == 1 and "ciso" in json.dumps(stage["approvers"])
    assert open_rules(estate.aws, "web") == [{"CidrIp": "0.0.0.0/0"}]  # kept: denied
    assert any("Fix not applied: denied by sla" in c for c in comments(estate.jira))
    # The Kubernetes checks could not run: that is a finding (and a ticket) of its own, and
    # the AWS checks ran all the same.
    assert any(
        t["summary"] == "[compliance] check-failed: kubernetes" for t in tickets(estate.jira)
    )
    assert output["outcomes"]["fixed"] == 2  # SSH closed and the leaky bucket blocked

    # An audit period's evidence, exported as CSV and JSON.
    today = datetime.now(UTC).date()
    text = await export_cli(
        db_url, "--from", today.isoformat(), "--to", today.isoformat(), "--format", "csv"
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == output["checked"]
    assert {"received_at", "type", "data.check", "data.target", "data.passed"} <= set(rows[0])
    failed = next(r for r in rows if r["data.check"] == "check-failed")
    assert failed["data.passed"] == "false" and "401" in failed["data.observed"]
    shown = json.loads(
        await export_cli(db_url, "--from", today.isoformat(), "--to", today.isoformat())
    )
    assert [e["event"]["type"] for e in shown] == [EVIDENCE] * output["checked"]
    yesterday = (today - timedelta(days=1)).isoformat()
    assert json.loads(await export_cli(db_url, "--from", yesterday, "--to", yesterday)) == []
