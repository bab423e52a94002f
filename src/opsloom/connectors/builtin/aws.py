"""Amazon Web Services: reboot EC2 instances, set an Auto Scaling group's desired capacity,
run a command through Systems Manager (SSM), publish to an SNS topic; and, in
:mod:`~opsloom.connectors.builtin.aws_security`, find security group rules open to the internet
and public S3 buckets, and close them.

Uses ``boto3`` (the ``aws`` extra: ``pip install 'opsloom[aws]'``) for what must not be
rewritten: Signature Version 4 signing and the credential chain (keys of the connection, else
a named profile, else the environment, the shared files, web identity, container or instance
metadata). Its clients are synchronous and thread-safe, so each call runs in a worker thread;
the calls are few and slow next to a thread hop, and ``aiobotocore`` pins exact ``botocore``
versions that would fight ``boto3`` and the test server (moto) for the same package. Clients
are made once per connection. botocore's own retries are turned off: the engine retries the
step (durably, with the breaker counting each failure), and a second retry loop would hide
an outage from the breaker.

Errors: throttling codes are rate limits; 5xx answers, timeouts and unreachable endpoints are
retried; missing credentials and other 4xx (``InvalidInstanceID.NotFound``, access denied)
fail the step, naming the code. SNS publish to a FIFO topic passes the step's idempotency key
as ``MessageDeduplicationId``; an SSM command carries the key in its comment, and a retried
step finds the command it sent instead of running the script twice. A reboot and a desired
capacity are harmless to repeat.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, model_validator

from opsloom.connectors.sdk import ActionContext, ConnectionSettings, Connector
from opsloom.errors import (
    ConfigurationError,
    ConnectorPermanentError,
    ConnectorRetryableError,
    RateLimitedError,
)

_THROTTLED = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
    "Throttled",
}
_TERMINAL = {"Success", "Cancelled", "TimedOut", "Failed", "Cancelling"}


class AwsSettings(ConnectionSettings):
    """A region and credentials (explicit keys, a profile, or the default chain)."""

    region: str = Field(min_length=1, description="e.g. eu-west-1")
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    profile: str | None = Field(
        default=None, description="A profile of the shared AWS files (may assume a role)."
    )
    endpoint_url: str | None = Field(
        default=None, description="Another endpoint (VPC endpoint, a local test server)."
    )

    _clients: dict[str, Any] = PrivateAttr(default_factory=dict)
    _lock: asyncio.Lock | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _keys_in_pairs(self) -> AwsSettings:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("access_key_id and secret_access_key go together")
        if self.session_token is not None and self.access_key_id is None:
            raise ValueError("session_token needs access_key_id and secret_access_key")
        return self

    async def client(self, service: str) -> Any:
        """The connection's boto3 client of ``service`` (made in a thread the first time)."""
        found = self._clients.get(service)
        if found is not None:
            return found
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # a boto3 session is not thread-safe: one client at a time
            if service not in self._clients:
                self._clients[service] = await asyncio.to_thread(self._make, service)
        return self._clients[service]

    async def aclose(self) -> None:
        """Close the boto3 clients (their connection pools) made for this connection."""
        clients, self._clients = list(self._clients.values()), {}
        for made in clients:
            await asyncio.to_thread(made.close)

    def _make(self, service: str) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise ConfigurationError(
                "the AWS connector needs boto3: pip install 'opsloom[aws]'"
            ) from None
        secret = self.secret_access_key.get_secret_value() if self.secret_access_key else None
        token = self.session_token.get_secret_value() if self.session_token else None
        try:
            session = boto3.session.Session(
                aws_access_key_id=self.access_key_id,
                aws_secret_access_key=secret,
                aws_session_token=token,
                region_name=self.region,
                profile_name=self.profile,
            )
        except Exception as exc:  # botocore's ProfileNotFound and kin
            raise ConfigurationError(f"AWS session: {exc}") from None
        config = Config(
            connect_timeout=min(5.0, self.timeout),
            read_timeout=self.timeout,
            retries={"total_max_attempts": 1},
            user_agent_extra="opsloom",
        )
        return session.client(service, endpoint_url=self.endpoint_url, config=config)


connector = Connector("aws", AwsSettings, title="Amazon Web Services", doc=__doc__ or "")


async def call(
    ctx: ActionContext[AwsSettings], service: str, operation: str, **params: Any
) -> dict[str, Any]:
    """Run one AWS API operation in a thread; its answer, or a classified connector error."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
        NoRegionError,
        ParamValidationError,
    )
    from botocore.parsers import ResponseParserError

    client = await ctx.settings.client(service)
    what = f"AWS {service} {operation} ({ctx.connection})"
    method: Callable[..., dict[str, Any]] = getattr(client, operation)
    try:
        answer = await asyncio.to_thread(partial(method, **params))
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = f"{what}: {code}: {error.get('Message', '')}".rstrip(": ")
        if code in _THROTTLED or status == 429:
            raise RateLimitedError(message, status=status or 429) from None
        if status >= 500 or code in ("InternalError", "ServiceUnavailable", "InternalFailure"):
            raise ConnectorRetryableError(message, status=status or None) from None
        raise ConnectorPermanentError(message, status=status or None) from None
    except (NoCredentialsError, NoRegionError, ParamValidationError) as exc:
        raise ConnectorPermanentError(f"{what}: {exc}") from None
    except (ConnectionError, HTTPClientError, ResponseParserError) as exc:
        # ResponseParserError: an answer that is not AWS's (a proxy's or balancer's error
        # page in front of the endpoint); the next attempt may reach the service.
        raise ConnectorRetryableError(f"{what}: {type(exc).__name__}: {exc}") from None
    except BotoCoreError as exc:
        raise ConnectorRetryableError(f"{what}: {type(exc).__name__}: {exc}") from None
    return answer


class Instances(BaseModel):
    """EC2 instances by id."""

    instance_ids: list[str] = Field(min_length=1, max_length=1000)


class Rebooted(BaseModel):
    """The instances asked to reboot."""

    instance_ids: list[str]


@connector.action
async def ec2_reboot(ctx: ActionContext[AwsSettings], data: Instances) -> Rebooted:
    """Reboot EC2 instances (an OS reboot; the instances keep their ids and volumes)."""
    await call(ctx, "ec2", "reboot_instances", InstanceIds=data.instance_ids)
    return Rebooted(instance_ids=data.instance_ids)


class DesiredCapacity(BaseModel):
    """A new desired capacity of an Auto Scaling group."""

    group: str = Field(min_length=1, description="The Auto Scaling group's name.")
    desired_capacity: int = Field(ge=0)
    honor_cooldown: bool = Field(
        default=False, description="Refuse while the group's cooldown period runs."
    )


class Group(BaseModel):
    """An Auto Scaling group's size after the change."""

    group: str
    desired_capacity: int
    min_size: int
    max_size: int
    instances: int


@connector.action
async def autoscaling_set_desired_capacity(
    ctx: ActionContext[AwsSettings], data: DesiredCapacity
) -> Group:
    """Set how many instances an Auto Scaling group should run (within its min and max)."""
    await call(
        ctx,
        "autoscaling",
        "set_desired_capacity",
        AutoScalingGroupName=data.group,
        DesiredCapacity=data.desired_capacity,
        HonorCooldown=data.honor_cooldown,
    )
    found = await call(
        ctx, "autoscaling", "describe_auto_scaling_groups", AutoScalingGroupNames=[data.group]
    )
    groups = found.get("AutoScalingGroups") or []
    if not groups:
        raise ConnectorPermanentError(f"AWS Auto Scaling group {data.group!r} not found")
    group = groups[0]
    return Group(
        group=data.group,
        desired_capacity=group["DesiredCapacity"],
        min_size=group["MinSize"],
        max_size=group["MaxSize"],
        instances=len(group.get("Instances") or []),
    )


class Command(BaseModel):
    """A Systems Manager command for some instances (by id or by tag)."""

    commands: list[str] = Field(min_length=1, description="Lines of the shell script.")
    instance_ids: list[str] | None = Field(default=None, max_length=50)
    targets: dict[str, list[str]] | None = Field(
        default=None, description='e.g. {"tag:role": ["web"]}'
    )
    document: str = Field(default="AWS-RunShellScript", description="or AWS-RunPowerShellScript")
    comment: str | None = Field(default=None, max_length=100)
    timeout_seconds: int = Field(default=600, ge=30, le=2592000)
    wait_seconds: float = Field(
        default=0, ge=0, le=600, description="Wait this long for the results (0: do not wait)."
    )

    @model_validator(mode="after")
    def _whom(self) -> Command:
        if (self.instance_ids is None) == (self.targets is None):
            raise ValueError("give instance_ids or targets (one of them)")
        return self


class Invocation(BaseModel):
    """What one instance did with the command."""

    instance_id: str
    status: str
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""


class CommandSent(BaseModel):
    """The command, and its results when waited for."""

    command_id: str
    status: str
    invocations: list[Invocation] = Field(default_factory=list)
    existing: bool = Field(default=False, description="Sent by an earlier attempt of the step.")


class CommandRef(BaseModel):
    """One instance's part of a command."""

    command_id: str
    instance_id: str


async def _invocation(
    ctx: ActionContext[AwsSettings], command_id: str, instance: str
) -> Invocation:
    found = await call(
        ctx, "ssm", "get_command_invocation", CommandId=command_id, InstanceId=instance
    )
    return Invocation(
        instance_id=instance,
        status=found.get("Status", "Pending"),
        exit_code=found.get("ResponseCode"),
        stdout=found.get("StandardOutputContent", ""),
        stderr=found.get("StandardErrorContent", ""),
    )


async def _invocations(
    ctx: ActionContext[AwsSettings], command_id: str, instances: list[str] | None
) -> list[Invocation]:
    if instances is not None:
        return [await _invocation(ctx, command_id, i) for i in instances]
    # Targets by tag: which instances they reached is known from the invocations.
    found = await call(ctx, "ssm", "list_command_invocations", CommandId=command_id, Details=True)
    result = []
    for item in found.get("CommandInvocations") or []:
        plugins = item.get("CommandPlugins") or [{}]
        result.append(
            Invocation(
                instance_id=item["InstanceId"],
                status=item.get("Status", "Pending"),
                exit_code=plugins[0].get("ResponseCode"),
                stdout=plugins[0].get("Output", ""),
                stderr=plugins[0].get("StandardErrorContent", ""),
            )
        )
    return result


@connector.action
async def ssm_send_command(ctx: ActionContext[AwsSettings], data: Command) -> CommandSent:
    """Run a shell script on instances through SSM Run Command (optionally wait for output).

    Once per step: the step's key is tagged in the command's comment, and a retry that finds
    the command its earlier attempt sent returns that one instead of running the script again.
    """
    mark = f"[opsloom {ctx.idempotency_key}]" if ctx.idempotency_key is not None else None
    earlier = await _sent_by(ctx, mark, data) if mark is not None else None
    if earlier is not None:
        command_id, status = earlier["CommandId"], earlier.get("Status", "Pending")
    else:
        command_id, status = await _send(ctx, data, mark)
    invocations: list[Invocation] = []
    if data.wait_seconds:
        deadline = ctx.now() + data.wait_seconds
        while True:
            invocations = await _invocations(ctx, command_id, data.instance_ids)
            if invocations and all(i.status in _TERMINAL for i in invocations):
                break
            if ctx.now() >= deadline:
                break
            await asyncio.sleep(1.0)
        statuses = {i.status for i in invocations}
        status = statuses.pop() if len(statuses) == 1 else status
    return CommandSent(
        command_id=command_id,
        status=status,
        invocations=invocations,
        existing=earlier is not None,
    )


async def _sent_by(
    ctx: ActionContext[AwsSettings], mark: str, data: Command
) -> dict[str, Any] | None:
    """The command an earlier attempt of this step sent, if any (from its comment)."""
    params: dict[str, Any] = {"MaxResults": 50}
    if data.instance_ids:
        params["InstanceId"] = data.instance_ids[0]
    else:
        since = datetime.fromtimestamp(ctx.now() - 86400, tz=UTC).isoformat()
        params["Filters"] = [{"key": "InvokedAfter", "value": since}]
    for _ in range(20):  # at most 1,000 recent commands
        page = await call(ctx, "ssm", "list_commands", **params)
        for command in page.get("Commands") or []:
            if str(command.get("Comment", "")).startswith(mark):
                found: dict[str, Any] = command
                return found
        if not page.get("NextToken"):
            return None
        params["NextToken"] = page["NextToken"]
    return None


async def _send(
    ctx: ActionContext[AwsSettings], data: Command, mark: str | None
) -> tuple[str, str]:
    params: dict[str, Any] = {
        "DocumentName": data.document,
        "Parameters": {"commands": data.commands},
        "TimeoutSeconds": data.timeout_seconds,
    }
    if data.instance_ids is not None:
        params["InstanceIds"] = data.instance_ids
    else:
        assert data.targets is not None
        params["Targets"] = [{"Key": k, "Values": v} for k, v in data.targets.items()]
    comment = " ".join(part for part in (mark, data.comment) if part)
    if comment:
        params["Comment"] = comment[:100]  # SSM's limit; the mark comes first
    sent = (await call(ctx, "ssm", "send_command", **params))["Command"]
    return sent["CommandId"], sent.get("Status", "Pending")


@connector.action
async def ssm_command_output(ctx: ActionContext[AwsSettings], data: CommandRef) -> Invocation:
    """The status, exit code and output of a command on one instance."""
    return await _invocation(ctx, data.command_id, data.instance_id)


class Publish(BaseModel):
    """A message for an SNS topic."""

    topic_arn: str = Field(pattern=r"^arn:aws[\w-]*:sns:")
    message: str = Field(min_length=1, max_length=262144)
    subject: str | None = Field(default=None, max_length=100)
    attributes: dict[str, str] = Field(default_factory=dict)
    group_id: str | None = Field(default=None, description="Message group (FIFO topics).")


class Published(BaseModel):
    """The message id SNS gave."""

    message_id: str
    sequence_number: str | None = None


@connector.action
async def sns_publish(ctx: ActionContext[AwsSettings], data: Publish) -> Published:
    """Publish a message to an SNS topic (FIFO topics: deduplicated by the step's key)."""
    params: dict[str, Any] = {"TopicArn": data.topic_arn, "Message": data.message}
    if data.subject:
        params["Subject"] = data.subject
    if data.attributes:
        params["MessageAttributes"] = {
            k: {"DataType": "String", "StringValue": v} for k, v in data.attributes.items()
        }
    if data.topic_arn.endswith(".fifo"):
        params["MessageGroupId"] = data.group_id or "opsloom"
        if ctx.idempotency_key is not None:
            digest = hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()
            params["MessageDeduplicationId"] = digest[:128]
    answer = await call(ctx, "sns", "publish", **params)
    return Published(message_id=answer["MessageId"], sequence_number=answer.get("SequenceNumber"))


@connector.connection_check
async def _check(ctx: ActionContext[AwsSettings]) -> str:
    who = await call(ctx, "sts", "get_caller_identity")
    return f"AWS account {who.get('Account')} as {who.get('Arn')} in {ctx.settings.region}"


# The security posture actions (open rules, public buckets) register on this connector too.
from opsloom.connectors.builtin import aws_security  # noqa: E402, F401
