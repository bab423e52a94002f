"""Amazon Web Services, security posture: security group rules open to the internet, public
S3 buckets, and the fixes (revoke a rule, block a bucket's public access).

Actions of the ``aws`` connector (:mod:`opsloom.connectors.builtin.aws` registers them), kept
apart because they read the account rather than act on one resource. A bucket is public when
its ACL grants to everyone (``AllUsers``) or to any AWS account (``AuthenticatedUsers``), or
when S3 says its policy is public, unless the bucket's public access block shuts it off.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from opsloom.connectors.builtin.aws import AwsSettings, call, connector
from opsloom.connectors.sdk import ActionContext
from opsloom.errors import ConnectorPermanentError

#: The CIDR blocks that mean "anyone on the internet".
WORLD = ("0.0.0.0/0", "::/0")
_PUBLIC_GRANTEES = {
    "http://acs.amazonaws.com/groups/global/AllUsers": "everyone",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers": "any AWS account",
}
_BLOCK_ALL = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


async def _maybe(
    ctx: ActionContext[AwsSettings], absent: str, service: str, operation: str, **params: Any
) -> dict[str, Any] | None:
    """The operation's answer, or None when AWS answers the error code ``absent`` (a bucket
    without a policy, a tag set or a public access block)."""
    try:
        return await call(ctx, service, operation, **params)
    except ConnectorPermanentError as exc:
        if f": {absent}" in str(exc):
            return None
        raise


class IngressQuery(BaseModel):
    """Which security groups to look at (all of the region's by default)."""

    group_ids: list[str] | None = Field(default=None, max_length=1000)


class OpenRule(BaseModel):
    """One inbound rule of a security group open to the internet."""

    group_id: str
    group_name: str
    vpc_id: str | None = None
    protocol: str = Field(description="tcp, udp, icmp or -1 (all).")
    from_port: int | None = None
    to_port: int | None = None
    cidr: str


class OpenRules(BaseModel):
    """The rules found, and how many groups were looked at."""

    groups: int
    rules: list[OpenRule]


@connector.action
async def ec2_open_ingress(ctx: ActionContext[AwsSettings], data: IngressQuery) -> OpenRules:
    """List the inbound security group rules that admit anyone (0.0.0.0/0 or ::/0)."""
    params: dict[str, Any] = {"GroupIds": data.group_ids} if data.group_ids else {}
    rules: list[OpenRule] = []
    groups = 0
    while True:
        found = await call(ctx, "ec2", "describe_security_groups", **params)
        for group in found.get("SecurityGroups") or []:
            groups += 1
            for permission in group.get("IpPermissions") or []:
                ranges = [r.get("CidrIp") for r in permission.get("IpRanges") or []]
                ranges += [r.get("CidrIpv6") for r in permission.get("Ipv6Ranges") or []]
                for cidr in ranges:
                    if cidr in WORLD:
                        rules.append(
                            OpenRule(
                                group_id=group["GroupId"],
                                group_name=group.get("GroupName", ""),
                                vpc_id=group.get("VpcId"),
                                protocol=str(permission.get("IpProtocol", "-1")),
                                from_port=permission.get("FromPort"),
                                to_port=permission.get("ToPort"),
                                cidr=cidr,
                            )
                        )
        token = found.get("NextToken")
        if not token:
            return OpenRules(groups=groups, rules=rules)
        params["NextToken"] = token


class RuleRef(BaseModel):
    """An inbound rule to remove (as :class:`OpenRule` names it)."""

    group_id: str = Field(min_length=1)
    protocol: str
    from_port: int | None = None
    to_port: int | None = None
    cidr: str


class Revoked(BaseModel):
    """The rule removed (``already``: it was not there any more)."""

    group_id: str
    cidr: str
    already: bool = False


@connector.action
async def ec2_revoke_ingress(ctx: ActionContext[AwsSettings], data: RuleRef) -> Revoked:
    """Remove one inbound rule from a security group (harmless to repeat)."""
    permission: dict[str, Any] = {"IpProtocol": data.protocol}
    if data.from_port is not None:
        permission["FromPort"] = data.from_port
    if data.to_port is not None:
        permission["ToPort"] = data.to_port
    if ":" in data.cidr:
        permission["Ipv6Ranges"] = [{"CidrIpv6": data.cidr}]
    else:
        permission["IpRanges"] = [{"CidrIp": data.cidr}]
    answer = await _maybe(
        ctx,
        "InvalidPermission.NotFound",
        "ec2",
        "revoke_security_group_ingress",
        GroupId=data.group_id,
        IpPermissions=[permission],
    )
    return Revoked(group_id=data.group_id, cidr=data.cidr, already=answer is None)


class BucketQuery(BaseModel):
    """Which buckets to look at (all of the account's by default)."""

    buckets: list[str] | None = None


class Bucket(BaseModel):
    """A bucket's exposure."""

    name: str
    public: bool
    reasons: list[str] = Field(description="Why it is public: ACL grants, a public policy.")
    blocked: bool = Field(description="Its public access block shuts every public path.")
    tags: dict[str, str] = Field(default_factory=dict)


class Buckets(BaseModel):
    """Every bucket looked at."""

    buckets: list[Bucket]


@connector.action
async def s3_bucket_exposure(ctx: ActionContext[AwsSettings], data: BucketQuery) -> Buckets:
    """Say for each bucket whether anyone on the internet may read it, and why."""
    names = data.buckets
    if names is None:
        listed = await call(ctx, "s3", "list_buckets")
        names = [b["Name"] for b in listed.get("Buckets") or []]
    result = []
    for name in names:
        block = await _maybe(
            ctx,
            "NoSuchPublicAccessBlockConfiguration",
            "s3",
            "get_public_access_block",
            Bucket=name,
        )
        settings = (block or {}).get("PublicAccessBlockConfiguration") or {}
        reasons = []
        acl = await call(ctx, "s3", "get_bucket_acl", Bucket=name)
        for grant in acl.get("Grants") or []:
            who = _PUBLIC_GRANTEES.get(str(grant.get("Grantee", {}).get("URI")))
            if who is not None and not settings.get("IgnorePublicAcls"):
                reasons.append(f"ACL grants {grant.get('Permission', '?')} to {who}")
        status = await _maybe(
            ctx, "NoSuchBucketPolicy", "s3", "get_bucket_policy_status", Bucket=name
        )
        if (status or {}).get("PolicyStatus", {}).get("IsPublic") and not settings.get(
            "RestrictPublicBuckets"
        ):
            reasons.append("bucket policy is public")
        tagging = await _maybe(ctx, "NoSuchTagSet", "s3", "get_bucket_tagging", Bucket=name)
        tags = {t["Key"]: t["Value"] for t in (tagging or {}).get("TagSet") or []}
        result.append(
            Bucket(
                name=name,
                public=bool(reasons),
                reasons=reasons,
                blocked=all(settings.get(key) for key in _BLOCK_ALL),
                tags=tags,
            )
        )
    return Buckets(buckets=result)


class BucketRef(BaseModel):
    """A bucket by name."""

    bucket: str = Field(min_length=3, max_length=63)


class Blocked(BaseModel):
    """The bucket whose public access is now blocked."""

    bucket: str


@connector.action
async def s3_block_public_access(ctx: ActionContext[AwsSettings], data: BucketRef) -> Blocked:
    """Turn on all four settings of a bucket's public access block (harmless to repeat)."""
    await call(
        ctx,
        "s3",
        "put_public_access_block",
        Bucket=data.bucket,
        PublicAccessBlockConfiguration=_BLOCK_ALL,
    )
    return Blocked(bucket=data.bucket)
