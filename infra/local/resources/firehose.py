"""Kinesis Data Firehose delivery streams to S3. moto writes each PutRecord(Batch) straight
to the bucket (no buffering); `infra.local.hooks` makes it expand `!{timestamp:...}` and
`!{firehose:...}` in prefixes as Firehose does, and apply the destination's record processing
(`infra.local.log_subscriptions`: decompression, CloudWatch Logs message extraction, a
delimiter per record; other processors are refused here)."""

from __future__ import annotations

from typing import Any

from infra.local.resources.base import Created, DeployContext, DeployError, ResourceSpec, tags

_S3_KEYS = {
    "BucketARN": "BucketARN",
    "RoleARN": "RoleARN",
    "Prefix": "Prefix",
    "ErrorOutputPrefix": "ErrorOutputPrefix",
    "CompressionFormat": "CompressionFormat",
}


def delivery_stream(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    name = p.get("DeliveryStreamName") or ctx.physical_name(spec, max_length=64)
    destination = p.get("ExtendedS3DestinationConfiguration") or p.get("S3DestinationConfiguration")
    if destination is None:
        raise DeployError(
            f"{spec.logical_id} ({spec.type}): only S3 destinations are emulated locally"
        )
    config: dict[str, Any] = {
        key: destination[source] for source, key in _S3_KEYS.items() if source in destination
    }
    processing = destination.get("ProcessingConfiguration")
    if processing:
        _check_processing(spec, processing)
        config["ProcessingConfiguration"] = processing
    hints = destination.get("BufferingHints") or {}
    if hints:
        config["BufferingHints"] = {
            key: int(value)
            for key, value in hints.items()
            if key in ("IntervalInSeconds", "SizeInMBs")
        }
    notes = [
        "records are written to S3 on every put (buffering hints recorded, not applied)",
        "encryption and CloudWatch delivery logging are recorded, not applied",
    ]
    previous = ctx.previous(spec)
    if previous is not None:
        # An update in place, as CloudFormation makes it: the destination's settings (its
        # record processing too) change, the stream and its name stay.
        client = ctx.client("firehose")
        described = client.describe_delivery_stream(DeliveryStreamName=previous.ref)
        stream = described["DeliveryStreamDescription"]
        client.update_destination(
            DeliveryStreamName=previous.ref,
            CurrentDeliveryStreamVersionId=stream["VersionId"],
            DestinationId=stream["Destinations"][0]["DestinationId"],
            # Processing the template no longer has is switched off, as CloudFormation does.
            ExtendedS3DestinationUpdate={
                "ProcessingConfiguration": {"Enabled": False, "Processors": []},
                **config,
            },
        )
        return Created(ref=previous.ref, attributes=dict(previous.attributes), notes=notes)
    request: dict[str, Any] = {
        "DeliveryStreamName": name,
        "DeliveryStreamType": p.get("DeliveryStreamType", "DirectPut"),
        "ExtendedS3DestinationConfiguration": config,
    }
    if tags(p):
        request["Tags"] = tags(p)
    arn = ctx.client("firehose").create_delivery_stream(**request)["DeliveryStreamARN"]
    return Created(ref=name, attributes={"Arn": arn}, notes=notes)


def _check_processing(spec: ResourceSpec, processing: dict[str, Any]) -> None:
    """Refuse record processing the local cloud would not apply as Firehose does."""
    from infra.local.log_subscriptions import check_processing

    try:
        check_processing(processing)
    except ValueError as exc:
        raise DeployError(f"{spec.logical_id} ({spec.type}): {exc}") from None
