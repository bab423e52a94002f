"""The posture actions of the AWS connector (moto in server mode) and of the Kubernetes
connector (the API server fake, schemas of ``kubernetes-validate``), on their own: what the
compliance runbook builds on, including the cases it does not meet."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import pytest
from kube_fake import Cluster, deployment, kubeconfig, valid
from test_aws import (  # noqa: F401 - fixtures
    KEYS,
    REGION,
    client,
    fresh_aws,
    moto_url,
    no_machine_credentials,
    uid,
)

from opsloom import App
from opsloom.connectors.builtin import aws_security, kubernetes_workloads
from opsloom.errors import ConnectorPermanentError

pytestmark = pytest.mark.slow


class Account(NamedTuple):
    ops: App  # with the connection "aws" to moto
    client: Any  # boto3 clients of the same moto, for setting up and checking
    uid: str  # this test's names


@pytest.fixture
async def account(ops: App, moto_url: str, client: Any, uid: str) -> Account:  # noqa: F811
    settings = {"region": REGION, "endpoint_url": moto_url, **KEYS}
    await ops.connections.add_connection("aws", "aws", settings)
    return Account(ops, client, uid)


async def test_open_ingress__ipv4_and_ipv6_world_rules_then_revoked_twice(account: Account) -> None:
    ops, name = account.ops, account.uid
    ec2 = account.client("ec2")
    group = ec2.create_security_group(GroupName=f"edge-{name}", Description="edge")["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 80,
                "ToPort": 80,
                "Ipv6Ranges": [{"CidrIpv6": "::/0"}],
            },
            {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}, {"CidrIp": "10.1.0.0/16"}]},
        ],
    )
    found = await ops.connections.call(aws_security.ec2_open_ingress, "aws", {"group_ids": [group]})
    assert found["groups"] == 1
    rules = sorted(found["rules"], key=lambda r: r["cidr"])
    assert [(r["protocol"], r["from_port"], r["cidr"]) for r in rules] == [
        ("-1", None, "0.0.0.0/0"),
        ("tcp", 80, "::/0"),
    ]
    for rule in rules:
        ref = {k: rule[k] for k in ("group_id", "protocol", "from_port", "to_port", "cidr")}
        first = await ops.connections.call(aws_security.ec2_revoke_ingress, "aws", ref)
        again = await ops.connections.call(aws_security.ec2_revoke_ingress, "aws", ref)
        assert (first["already"], again["already"]) == (False, True)
    after = await ops.connections.call(aws_security.ec2_open_ingress, "aws", {"group_ids": [group]})
    assert after["rules"] == []
    [left] = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"]
    assert [r["CidrIp"] for p in left["IpPermissions"] for r in p["IpRanges"]] == ["10.1.0.0/16"]
    with pytest.raises(ConnectorPermanentError, match="InvalidGroup"):
        await ops.connections.call(
            aws_security.ec2_open_ingress, "aws", {"group_ids": ["sg-0123456789abcdef0"]}
        )


async def test_bucket_exposure__acl_policy_and_the_block_that_shuts_them(account: Account) -> None:
    ops, name = account.ops, account.uid
    s3 = account.client("s3")
    where = {"LocationConstraint": REGION}
    acl, policy = f"acl-{name}", f"policy-{name}"
    for bucket in (acl, policy):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration=where)
    s3.put_bucket_acl(Bucket=acl, ACL="authenticated-read")
    statement = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{policy}/*",
    }
    s3.put_bucket_policy(
        Bucket=policy, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    )
    query = {"buckets": [acl, policy]}
    found = await ops.connections.call(aws_security.s3_bucket_exposure, "aws", query)
    by_name = {b["name"]: b for b in found["buckets"]}
    assert by_name[acl]["reasons"] == ["ACL grants READ to any AWS account"]
    assert by_name[policy]["public"] is True and by_name[policy]["blocked"] is False
    for bucket in (acl, policy):
        await ops.connections.call(aws_security.s3_block_public_access, "aws", {"bucket": bucket})
    after = await ops.connections.call(aws_security.s3_bucket_exposure, "aws", query)
    assert [(b["public"], b["blocked"]) for b in after["buckets"]] == [(False, True)] * 2


TOKEN = "kube-token-posture"


async def test_workloads__root_and_limits_then_defaults_keep_what_a_container_sets(
    ops: App,
) -> None:
    cluster = Cluster({TOKEN})
    api = deployment("api", "shop")
    api["spec"]["template"]["spec"]["securityContext"] = {"runAsNonRoot": True}
    api["spec"]["template"]["spec"]["containers"].append(
        {
            "name": "proxy",
            "image": "registry.test/proxy:1",
            "resources": {"limits": {"memory": "64Mi"}},
            "securityContext": {"runAsUser": 0},  # the container's own context wins
        }
    )
    cluster.add(valid(api))
    with cluster.vendor() as kube:
        await ops.connections.add_connection(
            "kubernetes", "kubernetes", {"kubeconfig": kubeconfig(kube.url, TOKEN)}
        )
        found = await ops.connections.call(kubernetes_workloads.list_workloads, "kubernetes", {})
        [workload] = found["workloads"]
        assert workload["namespace"] == "shop" and workload["replicas"] == 2
        assert {c["name"]: c["may_run_as_root"] for c in workload["containers"]} == {
            "api": False,
            "proxy": True,
        }
        limits = {"cpu": "500m", "memory": "512Mi"}
        done = await ops.connections.call(
            kubernetes_workloads.set_default_resources,
            "kubernetes",
            {"name": "api", "limits": limits, "requests": {"cpu": "100m"}},
        )
        assert done["containers"] == ["api", "proxy"]
        again = await ops.connections.call(
            kubernetes_workloads.set_default_resources,
            "kubernetes",
            {"name": "api", "limits": limits},
        )
        assert again["containers"] == []  # nothing left to set: no patch
        assert len(cluster.patches) == 1
        stored = cluster.workloads[("shop", "deployments", "api")]["spec"]["template"]["spec"]
        proxy = stored["containers"][1]
        assert proxy["resources"]["limits"] == {"cpu": "500m", "memory": "64Mi"}
        assert proxy["image"] == "registry.test/proxy:1"
        with pytest.raises(ConnectorPermanentError, match="404"):
            await ops.connections.call(
                kubernetes_workloads.set_default_resources,
                "kubernetes",
                {"name": "missing", "limits": limits},
            )
    assert kube.problems == []
