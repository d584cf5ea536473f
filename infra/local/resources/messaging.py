"""SNS topics, subscriptions and topic policies; SQS queues and queue policies. moto keeps
every message published to a topic (`sent_notifications`), which tests read."""

from __future__ import annotations

import json
from typing import Any

from infra.local.resources.base import Created, DeployContext, ResourceSpec, names, tags, unapplied

_TOPIC = names(
    "TopicName DisplayName KmsMasterKeyId FifoTopic ContentBasedDeduplication Subscription Tags"
)
_TOPIC_ATTRIBUTES = ("DisplayName", "KmsMasterKeyId", "FifoTopic", "ContentBasedDeduplication")


def topic(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    name = p.get("TopicName") or ctx.physical_name(spec, max_length=256)
    if p.get("FifoTopic") and not name.endswith(".fifo"):
        name = f"{name[:251]}.fifo"
    attributes = {key: _text(p[key]) for key in _TOPIC_ATTRIBUTES if key in p}
    sns = ctx.client("sns")
    request: dict[str, Any] = {"Name": name, "Attributes": attributes}
    if tags(p):
        request["Tags"] = tags(p)
    arn = sns.create_topic(**request)["TopicArn"]
    for subscription in p.get("Subscription") or []:
        sns.subscribe(
            TopicArn=arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"]
        )
    return Created(
        ref=arn,
        attributes={"TopicArn": arn, "TopicName": name},
        notes=unapplied(p, _TOPIC),
    )


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def topic_policy(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    sns = ctx.client("sns")
    for arn in p["Topics"]:
        sns.set_topic_attributes(
            TopicArn=arn, AttributeName="Policy", AttributeValue=json.dumps(p["PolicyDocument"])
        )
    return Created(ref=ctx.physical_name(spec))


def subscription(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    attributes = {
        key: _text(p[key]) if not isinstance(p[key], dict) else json.dumps(p[key])
        for key in ("FilterPolicy", "FilterPolicyScope", "RawMessageDelivery", "RedrivePolicy")
        if key in p
    }
    arn = ctx.client("sns").subscribe(
        TopicArn=p["TopicArn"],
        Protocol=p["Protocol"],
        Endpoint=p.get("Endpoint", ""),
        Attributes=attributes,
    )["SubscriptionArn"]
    return Created(ref=arn)


_QUEUE_ATTRIBUTES = tuple(
    (
        "DelaySeconds MaximumMessageSize MessageRetentionPeriod "
        "ReceiveMessageWaitTimeSeconds VisibilityTimeout KmsMasterKeyId "
        "KmsDataKeyReusePeriodSeconds SqsManagedSseEnabled FifoQueue "
        "ContentBasedDeduplication DeduplicationScope FifoThroughputLimit RedrivePolicy "
        "RedriveAllowPolicy"
    ).split()
)


def queue(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    name = p.get("QueueName") or ctx.physical_name(spec, max_length=80)
    if p.get("FifoQueue") and not name.endswith(".fifo"):
        name = f"{name[:75]}.fifo"
    attributes = {
        key: json.dumps(p[key]) if isinstance(p[key], dict) else _text(p[key])
        for key in _QUEUE_ATTRIBUTES
        if key in p
    }
    sqs = ctx.client("sqs")
    request: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
    if tags(p):
        request["tags"] = {tag["Key"]: tag["Value"] for tag in tags(p)}
    previous = ctx.previous(spec)
    if previous is not None:
        url = previous.ref
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    else:
        url = sqs.create_queue(**request)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return Created(
        ref=url,
        attributes={"Arn": arn, "QueueName": name, "QueueUrl": url},
        notes=unapplied(p, set(_QUEUE_ATTRIBUTES) | {"QueueName", "Tags"}),
    )


def queue_policy(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    sqs = ctx.client("sqs")
    for url in p["Queues"]:
        sqs.set_queue_attributes(
            QueueUrl=url, Attributes={"Policy": json.dumps(p["PolicyDocument"])}
        )
    return Created(ref=ctx.physical_name(spec))
