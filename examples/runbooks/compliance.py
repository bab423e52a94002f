"""Compliance monitoring: scheduled checks, automatic fixes for the low-risk findings, tickets
and an approval for the high-risk ones, and evidence of every check for the auditors.

Install it on your app with the settings of your estate (which endpoints, which AWS account
and Kubernetes namespaces, where the desired state lives in git, who approves)::

    from examples.runbooks.compliance import ComplianceSettings, install
    install(
        app,
        ComplianceSettings(tls_endpoints=("shop.acme.test:443",), desired_repo="/srv/gitops"),
    )

Every run (daily at 06:00 UTC by default):

1. checks, each family on its own (one that cannot run is itself a finding):
   - TLS certificates of ``tls_endpoints``: expire within ``tls_warn_days``;
   - AWS (``aws`` connection): security group rules open to the internet, public S3 buckets
     (a bucket tagged ``exposure=public`` is public on purpose and passes);
   - Kubernetes (``kubernetes`` connection, ``namespaces``): containers without CPU and memory
     limits, containers that may run as root;
   - config drift: the Deployments and StatefulSets in ``desired_path`` of the git repository
     ``desired_repo`` at ``desired_ref`` against the cluster (missing, replicas, images);
2. decides each finding's risk and handling with a decision table
   (``examples/decisions/compliance-findings.yaml``): ``auto`` (fixed at once: revoke the rule,
   block the bucket's public access, give the containers default limits, scale back to git's
   replicas), ``approve`` (a Jira ticket, then one approval for all of them, escalating when
   nobody answers; fixed when approved) or ``ticket`` (no automatic fix: renew a certificate,
   rebuild an image not to run as root);
3. stores one evidence event (``io.opsloom.compliance.evidence.v1``) per check and target,
   passed or not, with what was observed and what was done; ``opsloom events export`` gives
   an audit period's evidence as JSON or CSV.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from opsloom import App, Context
from opsloom.approvals.approval import approval
from opsloom.approvals.spec import ApprovalRequest, Approvers, Stage
from opsloom.connectors.builtin import aws_security, jira, kubernetes, kubernetes_workloads
from opsloom.connectors.sdk import Action
from opsloom.decisions.decide import decide
from opsloom.decisions.loader import load_table_file
from opsloom.errors import ConfigurationError, StepFailedError

WORKFLOW = "compliance-checks"
EVIDENCE = "io.opsloom.compliance.evidence.v1"
SOURCE = "opsloom/runbooks/compliance"
POLICY = Path(__file__).resolve().parents[1] / "decisions" / "compliance-findings.yaml"
#: The fixes a finding can name, by the name its ``fix`` holds.
FIXES: dict[str, Action[Any, Any]] = {
    "revoke-ingress": aws_security.ec2_revoke_ingress,
    "block-public-access": aws_security.s3_block_public_access,
    "default-resources": kubernetes_workloads.set_default_resources,
    "scale": kubernetes.scale,
}
_WORKLOADS = ("Deployment", "StatefulSet")


@dataclass(frozen=True)
class ComplianceSettings:
    """What a team changes: what to check, the connections, the desired state, approvers."""

    #: Cron (UTC) of the scheduled runs; ``None``: only runs started by hand or by the API.
    schedule: str | None = "0 6 * * *"
    #: ``host:port`` of the TLS endpoints whose certificates are checked.
    tls_endpoints: tuple[str, ...] = ()
    tls_warn_days: int = 30
    tls_timeout: float = 10.0
    #: The AWS connection (``None``: no AWS checks).
    aws: str | None = "aws"
    #: The tag (key, value) of buckets that are public on purpose.
    public_tag: tuple[str, str] = ("exposure", "public")
    #: The Kubernetes connection (``None``: no workload or drift checks).
    kubernetes: str | None = "kubernetes"
    namespaces: tuple[str, ...] = ("default",)
    default_requests: Mapping[str, str] = field(
        default_factory=lambda: {"cpu": "100m", "memory": "128Mi"}
    )
    default_limits: Mapping[str, str] = field(
        default_factory=lambda: {"cpu": "500m", "memory": "512Mi"}
    )
    #: The git repository of the desired state (a path or a URL ``git clone`` reads).
    desired_repo: str | None = None
    desired_ref: str = "main"
    desired_path: str = "k8s"
    jira: str = "jira"
    jira_project: str = "SEC"
    approvers: tuple[str, ...] = ("security-leads",)
    #: Who takes over an unanswered approval, one group per rung; then it is denied.
    escalate_to: tuple[str, ...] = ("ciso",)
    approval_sla: float = 86400.0
    policy: Path = POLICY
    requester: str = "compliance-monitoring"


# --- steps that look at the world directly (no connector covers them) -----------------------


async def tls_certificate(endpoint: str, timeout: float) -> dict[str, Any]:
    """The certificate an endpoint presents (not verified: an expired or self-signed one is
    what this check is for), or the error that kept it from being read."""
    from cryptography import x509

    host, _, port = endpoint.rpartition(":")
    if not host or not port.isdigit():
        return {"error": f"{endpoint!r} is not host:port"}
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host.strip("[]"), int(port), ssl=context, server_hostname=host),
            timeout,
        )
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}".rstrip(": ")}
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        # The certificate is read; how the connection ends does not matter.
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    cert = x509.load_der_x509_certificate(der)
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": format(cert.serial_number, "x"),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


async def _git(folder: str | None, *args: str) -> str:
    command = ["git", *(["-C", folder] if folder else []), *args]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise ConfigurationError(f"git {' '.join(args)}: {err.decode().strip()}")
    return out.decode()


async def desired_state(repo: str, ref: str, path: str) -> dict[str, Any]:
    """The Deployments and StatefulSets under ``path`` of ``repo`` at ``ref``: name, kind,
    namespace, replicas and container images, and the commit they were read at."""
    from ruamel.yaml import YAML

    with tempfile.TemporaryDirectory(prefix="opsloom-desired-") as clone:
        folder = repo
        if not Path(repo).is_dir():
            await _git(None, "clone", "--quiet", "--depth", "1", "--branch", ref, repo, clone)
            folder = clone
        commit = (await _git(folder, "rev-parse", "--verify", f"{ref}^{{commit}}")).strip()
        names = (await _git(folder, "ls-tree", "-r", "--name-only", commit, "--", path)).split()
        workloads = []
        for name in sorted(n for n in names if n.endswith((".yaml", ".yml", ".json"))):
            text = await _git(folder, "show", f"{commit}:{name}")
            for doc in YAML(typ="safe").load_all(text):
                if not isinstance(doc, dict) or doc.get("kind") not in _WORKLOADS:
                    continue
                meta, spec = doc.get("metadata") or {}, doc.get("spec") or {}
                pod = (spec.get("template") or {}).get("spec") or {}
                workloads.append(
                    {
                        "file": name,
                        "kind": doc["kind"],
                        "name": meta.get("name"),
                        "namespace": meta.get("namespace", "default"),
                        "replicas": spec.get("replicas", 1),
                        "images": {c["name"]: c.get("image") for c in pod.get("containers") or []},
                    }
                )
    return {"commit": commit, "workloads": workloads}


desired_state.__qualname__ = "compliance.desired_state"
tls_certificate.__qualname__ = "compliance.tls_certificate"


def _result(
    check: str, target: str, passed: bool, observed: dict[str, Any], fix: dict[str, Any] | None
) -> dict[str, Any]:
    return {"check": check, "target": target, "passed": passed, "observed": observed, "fix": fix}


class Compliance:
    """The runbook bound to one estate's settings (the workflow is :meth:`run`)."""

    def __init__(self, settings: ComplianceSettings) -> None:
        self.settings = settings
        self.policy = load_table_file(settings.policy)

    # --- the checks -------------------------------------------------------------------------

    async def _tls(self, ctx: Context) -> list[dict[str, Any]]:
        s = self.settings
        results = []
        for endpoint in s.tls_endpoints:
            cert = await ctx.step(tls_certificate, endpoint, s.tls_timeout)
            if "error" in cert:
                results.append(_result("tls-endpoint", endpoint, False, cert, None))
                continue
            left = datetime.fromisoformat(cert["not_after"]) - ctx.now()
            cert["days_left"] = math.floor(left.total_seconds() / 86400)
            passed = cert["days_left"] >= s.tls_warn_days
            results.append(_result("tls-certificate", endpoint, passed, cert, None))
        return results

    async def _aws(self, ctx: Context) -> list[dict[str, Any]]:
        s = self.settings
        assert s.aws is not None
        rules = await ctx.step(aws_security.ec2_open_ingress, connection=s.aws)
        results = []
        for rule in rules["rules"]:
            ports = f"{rule['protocol']}/{rule['from_port']}-{rule['to_port']}"
            fix = {"name": "revoke-ingress", "connection": s.aws, "input": _revoke(rule)}
            target = f"{rule['group_id']} {ports} from {rule['cidr']}"
            results.append(_result("security-group", target, False, rule, fix))
        if not rules["rules"]:
            observed = {"groups": rules["groups"]}
            results.append(_result("security-group", "all groups", True, observed, None))
        buckets = await ctx.step(aws_security.s3_bucket_exposure, connection=s.aws)
        key, value = s.public_tag
        for bucket in buckets["buckets"]:
            passed = not bucket["public"] or bucket["tags"].get(key) == value
            fix = {
                "name": "block-public-access",
                "connection": s.aws,
                "input": {"bucket": bucket["name"]},
            }
            results.append(
                _result("s3-bucket", bucket["name"], passed, bucket, None if passed else fix)
            )
        return results

    async def _workloads(self, ctx: Context, namespace: str) -> list[dict[str, Any]]:
        s = self.settings
        found = await ctx.step(
            kubernetes_workloads.list_workloads, connection=s.kubernetes, namespace=namespace
        )
        workloads: list[dict[str, Any]] = found["workloads"]
        return workloads

    async def _kubernetes(
        self, ctx: Context, live: dict[tuple[str, str, str], dict[str, Any]]
    ) -> list[dict[str, Any]]:
        s = self.settings
        results = []
        for namespace in s.namespaces:
            for w in await self._workloads(ctx, namespace):
                live[(w["namespace"], w["kind"], w["name"])] = w
                target = f"{w['kind'].lower()}/{w['name']} in {w['namespace']}"
                bare = [
                    c["name"] for c in w["containers"] if not {"cpu", "memory"} <= set(c["limits"])
                ]
                fix = {
                    "name": "default-resources",
                    "connection": s.kubernetes,
                    "input": {
                        "name": w["name"],
                        "kind": w["kind"],
                        "namespace": w["namespace"],
                        "requests": dict(s.default_requests),
                        "limits": dict(s.default_limits),
                        "containers": bare,
                    },
                }
                observed = {"containers": bare}
                results.append(
                    _result("workload-limits", target, not bare, observed, fix if bare else None)
                )
                root = [c["name"] for c in w["containers"] if c["may_run_as_root"]]
                results.append(
                    _result("workload-root", target, not root, {"containers": root}, None)
                )
        return results

    async def _drift(
        self, ctx: Context, live: dict[tuple[str, str, str], dict[str, Any]]
    ) -> list[dict[str, Any]]:
        s = self.settings
        assert s.desired_repo is not None
        desired = await ctx.step(desired_state, s.desired_repo, s.desired_ref, s.desired_path)
        results = []
        for want in desired["workloads"]:
            key = (want["namespace"], want["kind"], want["name"])
            if key not in live and want["namespace"] not in s.namespaces:
                for w in await self._workloads(ctx, want["namespace"]):
                    live.setdefault((w["namespace"], w["kind"], w["name"]), w)
            target = f"{want['kind'].lower()}/{want['name']} in {want['namespace']}"
            base = {"commit": desired["commit"], "file": want["file"]}
            have = live.get(key)
            if have is None:
                observed = {**base, "field": "missing", "desired": "present", "actual": None}
                results.append(_result("config-drift", target, False, observed, None))
                continue
            drifted = False
            if have["replicas"] != want["replicas"]:
                drifted = True
                observed = {
                    **base,
                    "field": "replicas",
                    "desired": want["replicas"],
                    "actual": have["replicas"],
                }
                fix = {
                    "name": "scale",
                    "connection": s.kubernetes,
                    "input": {
                        "name": want["name"],
                        "kind": want["kind"],
                        "namespace": want["namespace"],
                        "replicas": want["replicas"],
                    },
                }
                results.append(_result("config-drift", target, False, observed, fix))
            images = {c["name"]: c["image"] for c in have["containers"]}
            for container, image in want["images"].items():
                if images.get(container) != image:
                    drifted = True
                    observed = {
                        **base,
                        "field": "image",
                        "container": container,
                        "desired": image,
                        "actual": images.get(container),
                    }
                    results.append(_result("config-drift", target, False, observed, None))
            if not drifted:
                results.append(_result("config-drift", target, True, base, None))
        return results

    async def _check(self, ctx: Context, family: str, checks: Any) -> list[dict[str, Any]]:
        """A family's results; a family that cannot run is one failed result saying why."""
        try:
            results: list[dict[str, Any]] = await checks
        except StepFailedError as exc:
            return [_result("check-failed", family, False, {"error": str(exc)}, None)]
        return results

    # --- handling the findings --------------------------------------------------------------

    async def _ticket(self, ctx: Context, finding: dict[str, Any]) -> None:
        s = self.settings
        lines = [
            f"Check: {finding['check']}",
            f"Target: {finding['target']}",
            f"Risk: {finding['risk']} ({finding['action']})",
            f"Found by run {ctx.run_id}",
            "",
            *(f"{key}: {value}" for key, value in finding["observed"].items()),
        ]
        ticket = await ctx.step(
            jira.create_issue,
            connection=s.jira,
            project=s.jira_project,
            summary=f"[compliance] {finding['check']}: {finding['target']}"[:255],
            description="\n".join(lines),
            labels=["compliance", finding["check"]],
            priority=finding["priority"],
        )
        finding["ticket"] = ticket["key"]

    async def _fix(self, ctx: Context, finding: dict[str, Any]) -> bool:
        fix = finding["fix"]
        try:
            finding["fixed"] = await ctx.step(
                FIXES[fix["name"]], connection=fix["connection"], **fix["input"]
            )
        except StepFailedError as exc:
            finding["fix_error"] = str(exc)
            return False
        return True

    async def _comment(self, ctx: Context, finding: dict[str, Any], text: str) -> None:
        await ctx.step(
            jira.add_comment, connection=self.settings.jira, issue=finding["ticket"], body=text
        )

    async def _approve(self, ctx: Context, findings: list[dict[str, Any]]) -> dict[str, Any]:
        s = self.settings
        decided = await approval(
            ctx,
            ApprovalRequest(
                title=f"Apply {len(findings)} high-risk compliance fix(es)",
                requester=s.requester,
                subject={
                    "findings": [
                        {"check": f["check"], "target": f["target"], "ticket": f["ticket"]}
                        for f in findings
                    ]
                },
                risk="high",
                stages=(
                    Stage(
                        "security",
                        groups=s.approvers,
                        sla=s.approval_sla,
                        escalate_to=tuple(Approvers(groups=(g,)) for g in s.escalate_to),
                        on_sla="deny",
                    ),
                ),
            ),
        )
        for finding in findings:
            finding["decided_by"] = decided.decided_by
            if not decided.approved:
                finding["outcome"] = "fix denied"
                why = f"Fix not applied: denied by {decided.decided_by}: {decided.reason}"
                await self._comment(ctx, finding, why)
            elif await self._fix(ctx, finding):
                finding["outcome"] = "fixed after approval"
                await self._comment(
                    ctx, finding, f"Fixed by opsloom, approved by {decided.decided_by}"
                )
            else:
                finding["outcome"] = "fix failed"
                await self._comment(
                    ctx, finding, f"The approved fix failed: {finding['fix_error']}"
                )
        return {"status": decided.status.value, "decided_by": decided.decided_by}

    async def run(self, ctx: Context, input: Any = None) -> dict[str, Any]:
        """The workflow: every check, then the findings handled, then the evidence stored."""
        s = self.settings
        results = await self._check(ctx, "tls", self._tls(ctx))
        if s.aws:
            results += await self._check(ctx, "aws", self._aws(ctx))
        live: dict[tuple[str, str, str], dict[str, Any]] = {}
        if s.kubernetes:
            results += await self._check(ctx, "kubernetes", self._kubernetes(ctx, live))
            if s.desired_repo:
                results += await self._check(ctx, "config-drift", self._drift(ctx, live))
        findings = [r for r in results if not r["passed"]]
        waiting = []
        for finding in findings:
            handling = (await decide(ctx, self.policy, finding)).output or {}
            finding.update(
                risk=handling.get("risk", "high"),
                action=handling.get("action", "ticket"),
                priority=handling.get("priority"),
            )
            if finding["action"] == "auto" and finding["fix"] is not None:
                if await self._fix(ctx, finding):
                    finding["outcome"] = "fixed"
                    continue
                finding["outcome"] = "fix failed"  # then a person looks at it
                finding["risk"] = "high"
            await self._ticket(ctx, finding)
            if (
                finding["action"] == "approve"
                and finding["fix"] is not None
                and "outcome" not in finding
            ):
                waiting.append(finding)
            else:
                finding.setdefault("outcome", "ticketed")
        decided = await self._approve(ctx, waiting) if waiting else None
        checked_at = ctx.now().isoformat()
        for result in results:
            await ctx.emit(
                {
                    "type": EVIDENCE,
                    "source": SOURCE,
                    "subject": f"{result['check']}/{result['target']}",
                    "data": {
                        "run": ctx.run_id,
                        "checked_at": checked_at,
                        "check": result["check"],
                        "target": result["target"],
                        "passed": result["passed"],
                        "risk": result.get("risk"),
                        "outcome": result.get("outcome", "passed" if result["passed"] else None),
                        "ticket": result.get("ticket"),
                        "decided_by": result.get("decided_by"),
                        "observed": result["observed"],
                    },
                }
            )
        outcomes: dict[str, int] = {}
        for finding in findings:
            outcomes[finding["outcome"]] = outcomes.get(finding["outcome"], 0) + 1
        return {
            "checked": len(results),
            "passed": len(results) - len(findings),
            "failed": len(findings),
            "outcomes": outcomes,
            "tickets": [f["ticket"] for f in findings if f.get("ticket")],
            "approval": decided,
        }


def _revoke(rule: dict[str, Any]) -> dict[str, Any]:
    return {k: rule[k] for k in ("group_id", "protocol", "from_port", "to_port", "cidr")}


def install(app: App, settings: ComplianceSettings | None = None) -> Compliance:
    """Register the runbook on ``app``, scheduled by ``settings.schedule``."""
    compliance = Compliance(settings or ComplianceSettings())
    app.workflow(name=WORKFLOW, schedule=compliance.settings.schedule)(compliance.run)
    return compliance
