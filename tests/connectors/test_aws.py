"""The AWS connector against moto in server mode: a local implementation of the AWS APIs,
spoken to over HTTP with SigV4-signed requests exactly as boto3 sends them to AWS."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from opsloom import App
from opsloom.connectors.builtin import aws
from opsloom.errors import ConnectorPermanentError, ConnectorRetryableError, InputError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from peers import free_port

pytestmark = pytest.mark.slow

REGION = "eu-west-1"
KEYS = {"access_key_id": "AKIAOPSLOOMTEST0001", "secret_access_key": "s3cr3t-aws-key-for-tests"}


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def fresh_aws(moto_url: str) -> None:
    """Each test starts on an empty AWS: the server serves every store's run of the module."""
    # Resetting every moto backend is slow on a loaded machine: the test's own timeout bounds it.
    httpx.post(f"{moto_url}/moto-api/reset", timeout=60).raise_for_status()


@pytest.fixture
def client(moto_url: str) -> Any:
    """A plain boto3 client on the same server, for setting up and checking."""

    def make(service: str) -> Any:
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=moto_url,
            aws_access_key_id=KEYS["access_key_id"],
            aws_secret_access_key=KEYS["secret_access_key"],
        )

    return make


@pytest.fixture
def uid() -> str:
    """Names of this test's AWS resources: one moto serves every store's run of the module."""
    return uuid.uuid4().hex[:8]


@pytest.fixture(autouse=True)
def no_machine_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The credential chain sees only what a test gives it (no ~/.aws, no metadata service)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


async def _connect(ops: App, url: str, name: str = "aws", **values: Any) -> None:
    settings = {"region": REGION, "endpoint_url": url, **KEYS, **values}
    await ops.connections.add_connection(name, "aws", settings)


def _image(client: Any) -> str:
    # One of the Amazon Linux images moto knows (listing all of them takes seconds).
    name = {"Name": "name", "Values": ["amzn2-ami-hvm-2.0.*"]}
    found = client("ec2").describe_images(Owners=["amazon"], Filters=[name])["Images"]
    image: str = found[0]["ImageId"]
    return image


def _instances(client: Any, count: int) -> list[str]:
    made = client("ec2").run_instances(ImageId=_image(client), MinCount=count, MaxCount=count)
    return [i["InstanceId"] for i in made["Instances"]]


async def test_aws__connection_check_and_ec2_reboot(ops: App, moto_url: str, client: Any) -> None:
    await _connect(ops, moto_url)
    assert (await ops.connections.test_connection("aws")).startswith("AWS account 123456789012")
    ids = _instances(client, 2)
    out = await ops.connections.call(aws.ec2_reboot, "aws", {"instance_ids": ids})
    assert out == {"instance_ids": ids}
    states = client("ec2").describe_instances(InstanceIds=ids)["Reservations"][0]["Instances"]
    assert {i["State"]["Name"] for i in states} == {"running"}
    with pytest.raises(ConnectorPermanentError, match=r"InvalidInstanceID\.NotFound") as caught:
        await ops.connections.call(aws.ec2_reboot, "aws", {"instance_ids": ["i-0123456789abcdef0"]})
    assert KEYS["secret_access_key"] not in str(caught.value)


async def test_aws__autoscaling_desired_capacity(
    ops: App, moto_url: str, client: Any, uid: str
) -> None:
    await _connect(ops, moto_url)
    client("ec2").create_launch_template(
        LaunchTemplateName=f"web-{uid}",
        LaunchTemplateData={"ImageId": _image(client), "InstanceType": "t3.micro"},
    )
    client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=f"web-asg-{uid}",
        LaunchTemplate={"LaunchTemplateName": f"web-{uid}"},
        MinSize=1,
        MaxSize=4,
        DesiredCapacity=1,
        AvailabilityZones=[f"{REGION}a"],
    )
    out = await ops.connections.call(
        aws.autoscaling_set_desired_capacity,
        "aws",
        {"group": f"web-asg-{uid}", "desired_capacity": 3},
    )
    assert out == {
        "group": f"web-asg-{uid}",
        "desired_capacity": 3,
        "min_size": 1,
        "max_size": 4,
        "instances": 3,
    }
    groups = client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[f"web-asg-{uid}"]
    )["AutoScalingGroups"]
    assert groups[0]["DesiredCapacity"] == 3


async def test_aws__ssm_send_command_and_read_its_output(
    ops: App, moto_url: str, client: Any, uid: str
) -> None:
    await _connect(ops, moto_url)
    ids = _instances(client, 1)
    sent = await ops.connections.call(
        aws.ssm_send_command,
        "aws",
        {
            "instance_ids": ids,
            "commands": ["systemctl restart nginx"],
            "comment": "restart nginx",
            "wait_seconds": 10,
        },
    )
    assert sent["command_id"] and sent["status"] == "Success"
    assert [i["instance_id"] for i in sent["invocations"]] == ids
    listed = client("ssm").list_commands(CommandId=sent["command_id"])["Commands"][0]
    assert listed["Parameters"] == {"commands": ["systemctl restart nginx"]}
    assert listed["DocumentName"] == "AWS-RunShellScript" and listed["Comment"] == "restart nginx"
    one = await ops.connections.call(
        aws.ssm_command_output, "aws", {"command_id": sent["command_id"], "instance_id": ids[0]}
    )
    assert one["status"] == "Success" and one["instance_id"] == ids[0]
    # Two attempts of one step send the command once; another step sends it again.
    script = {"instance_ids": ids, "commands": ["logrotate -f /etc/logrotate.conf"]}
    first = await ops.connections.call(
        aws.ssm_send_command, "aws", script, idempotency_key=f"{uid}:2"
    )
    again = await ops.connections.call(
        aws.ssm_send_command, "aws", script, idempotency_key=f"{uid}:2"
    )
    other = await ops.connections.call(
        aws.ssm_send_command, "aws", script, idempotency_key=f"{uid}:3"
    )
    assert (first["existing"], again["existing"], other["existing"]) == (False, True, False)
    assert again["command_id"] == first["command_id"] != other["command_id"]
    sent = client("ssm").list_commands(InstanceId=ids[0])["Commands"]
    tagged = [c["Comment"] for c in sent if c["Comment"].startswith(f"[opsloom {uid}:")]
    assert sorted(tagged) == [f"[opsloom {uid}:2]", f"[opsloom {uid}:3]"]
    with pytest.raises(ConnectorPermanentError, match="instance_ids or targets"):
        await ops.connections.call(aws.ssm_send_command, "aws", {"commands": ["true"]})


async def test_aws__sns_publish_reaches_a_subscribed_queue(
    ops: App, moto_url: str, client: Any, uid: str
) -> None:
    await _connect(ops, moto_url)
    sns, sqs = client("sns"), client("sqs")
    topic = sns.create_topic(Name=f"ops-alerts-{uid}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"ops-inbox-{uid}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"])
    out = await ops.connections.call(
        aws.sns_publish,
        "aws",
        {
            "topic_arn": topic,
            "message": "db-1 disk full",
            "subject": "disk",
            "attributes": {"severity": "page"},
        },
    )
    assert out["message_id"]
    [message] = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"]
    body = json.loads(message["Body"])
    assert body["Message"] == "db-1 disk full" and body["Subject"] == "disk"
    assert body["MessageId"] == out["message_id"]
    assert body["MessageAttributes"]["severity"]["Value"] == "page"


async def test_aws__fifo_publish_is_deduplicated_by_the_step(
    ops: App, moto_url: str, client: Any, uid: str
) -> None:
    await _connect(ops, moto_url)
    sns, sqs = client("sns"), client("sqs")
    topic = sns.create_topic(Name=f"deploys-{uid}.fifo", Attributes={"FifoTopic": "true"})[
        "TopicArn"
    ]
    queue = sqs.create_queue(QueueName=f"deploys-{uid}.fifo", Attributes={"FifoQueue": "true"})
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue["QueueUrl"], AttributeNames=["QueueArn"])
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn["Attributes"]["QueueArn"],
        Attributes={"RawMessageDelivery": "true"},
    )
    data = {"topic_arn": topic, "message": "deploy 42 done"}
    for key in (f"{uid}:4", f"{uid}:4", f"{uid}:5"):
        await ops.connections.call(aws.sns_publish, "aws", data, idempotency_key=key)
    got = sqs.receive_message(QueueUrl=queue["QueueUrl"], MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in got] == ["deploy 42 done", "deploy 42 done"]


async def test_aws__credentials_from_the_chain_a_profile_or_nowhere(
    ops: App, moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The environment, as on a machine with exported keys.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMTHEENV000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-the-environment")
    await ops.connections.add_connection("env", "aws", {"region": REGION, "endpoint_url": moto_url})
    assert "123456789012" in await ops.connections.test_connection("env")
    # A named profile of the shared credentials file.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    shared = tmp_path / "credentials"
    shared.write_text("[ops]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = p\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(shared))
    await ops.connections.add_connection(
        "profile", "aws", {"region": REGION, "endpoint_url": moto_url, "profile": "ops"}
    )
    assert "123456789012" in await ops.connections.test_connection("profile")
    # Nothing at all: the step fails, naming the problem.
    await ops.connections.add_connection(
        "none", "aws", {"region": REGION, "endpoint_url": moto_url}
    )
    with pytest.raises(ConnectorPermanentError, match="Unable to locate credentials"):
        await ops.connections.call(aws.ec2_reboot, "none", {"instance_ids": ["i-1"]})
    with pytest.raises(InputError, match="go together"):
        await ops.connections.add_connection(
            "half", "aws", {"region": REGION, "access_key_id": "AKIA"}
        )


async def test_aws__an_unreachable_endpoint_is_retried_then_opens_the_breaker(
    ops: App, moto_url: str
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    await _connect(ops, dead, name="dead", breaker={"failures": 2, "cooldown": 30})
    for _ in range(2):
        with pytest.raises(ConnectorRetryableError, match="AWS ec2 reboot_instances"):
            await ops.connections.call(aws.ec2_reboot, "dead", {"instance_ids": ["i-1"]})
    assert ops.connections.breaker("dead")["state"] == "open"


async def test_aws__requests_are_signed_and_authorised_by_iam(
    ops: App, moto_url: str, client: Any, uid: str
) -> None:
    """With moto's IAM checks on, the signature of each request is verified against the
    caller's secret key and the action against the caller's policy."""
    from moto.core.authorization import enable_iam_authentication

    iam = client("iam")
    iam.create_user(UserName=f"notifier-{uid}")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sns:Publish", "Resource": "*"}],
    }
    iam.put_user_policy(
        UserName=f"notifier-{uid}", PolicyName="publish", PolicyDocument=json.dumps(policy)
    )
    key = iam.create_access_key(UserName=f"notifier-{uid}")["AccessKey"]
    topic = client("sns").create_topic(Name=f"signed-{uid}")["TopicArn"]
    keys = {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}
    await _connect(ops, moto_url, name="notifier", **keys)
    wrong = {**keys, "secret_access_key": "not-the-secret-key"}
    await _connect(ops, moto_url, name="forged", **wrong)
    message = {"topic_arn": topic, "message": "signed"}
    with enable_iam_authentication():
        out = await ops.connections.call(aws.sns_publish, "notifier", message)
        assert out["message_id"]
        with pytest.raises(ConnectorPermanentError, match="SignatureDoesNotMatch"):
            await ops.connections.call(aws.sns_publish, "forged", message)
        with pytest.raises(ConnectorPermanentError, match=r"not authorized|AccessDenied"):
            await ops.connections.call(aws.ec2_reboot, "notifier", {"instance_ids": ["i-1"]})
