"""CloudWatch Logs subscription filters to Firehose, as the services deliver them.

- The filter pattern: moto sends every log event to every subscription. CloudWatch Logs sends
  only the events its pattern matches; the local cloud implements the patterns the stack uses
  (`compile_pattern`: the empty pattern, and JSON property comparisons `{ $.a.b = "text" }`,
  `{ $.n = 3 }`, `!=`, joined by `&&`) and refuses any other pattern when the filter is put,
  naming it, rather than deliver events AWS would not (or drop events AWS would deliver).
- The role: CloudWatch Logs puts to the destination stream as the filter's role (a session it
  assumed, `logs.amazonaws.com`, on behalf of the log group); a role that may not
  `firehose:PutRecord` to the stream loses the events, logged here.
- Firehose's record processing (`ProcessingConfiguration` of the stream's S3 destination):
  `Decompression` (GZIP) of what CloudWatch Logs sends, `CloudWatchLogProcessing` with
  `DataMessageExtraction` (each log event's message becomes a record; control messages are
  dropped) and `AppendDelimiterToRecord` (a newline after each record). Without processing,
  the gzipped batch is delivered as it came, as on AWS. Other processors are refused loudly.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

log = logging.getLogger("infra.local.logs")
LOGS_SERVICE = "logs.amazonaws.com"

_COMPARISON = re.compile(
    r"""\s*\$((?:\.[A-Za-z_][A-Za-z0-9_-]*)+)\s*(=|!=)\s*("(?:[^"\\*]|\\.)*"|-?\d+(?:\.\d+)?)\s*"""
)
_PROCESSORS = {"Decompression", "CloudWatchLogProcessing", "AppendDelimiterToRecord"}


class UnsupportedFilterPattern(ValueError):
    """A subscription filter pattern the local cloud does not implement."""


Matcher = Callable[[str], bool]


@lru_cache(maxsize=64)
def compile_pattern(pattern: str) -> Matcher:
    """A predicate over log event messages that is true exactly when CloudWatch Logs' filter
    `pattern` matches the message.

    Raises:
        UnsupportedFilterPattern: the pattern is of a kind the local cloud does not implement.
    """
    text = pattern.strip()
    if not text:
        return lambda message: True
    if not (text.startswith("{") and text.endswith("}")):
        raise UnsupportedFilterPattern(
            f"filter pattern {pattern!r}: the local cloud implements the empty pattern and JSON "
            'property comparisons ({ $.a = "x" && $.b != 3 }) only'
        )
    comparisons = []
    for part in text[1:-1].split("&&"):
        found = _COMPARISON.fullmatch(part)
        if found is None:
            raise UnsupportedFilterPattern(
                f"filter pattern {pattern!r}: {part.strip()!r} is not a JSON property "
                'comparison the local cloud implements ($.path = "text", $.path = 3, or !=, '
                "no wildcards, no || or parentheses)"
            )
        path, operator, literal = found.groups()
        value = json.loads(literal)
        comparisons.append((tuple(path[1:].split(".")), operator == "=", value))

    def matches(message: str) -> bool:
        if not message.lstrip().startswith("{"):
            return False
        try:
            document = json.loads(message)
        except ValueError:
            return False
        for path, equal, value in comparisons:
            found: Any = document
            for key in path:
                found = found.get(key) if isinstance(found, dict) else None
            if found is None:
                return False  # a missing property matches neither = nor !=
            same = _equal(found, value)
            if same is not equal:
                return False
        return True

    return matches


def _equal(found: Any, value: Any) -> bool:
    if isinstance(value, str):
        return isinstance(found, str) and found == value
    return type(found) in (int, float) and float(found) == float(value)


def install() -> None:
    """Apply filter patterns and the filter's role to moto's subscription deliveries, check
    patterns when a filter is put, and process Firehose records (idempotent)."""
    from moto.firehose.models import FirehoseBackend
    from moto.logs.exceptions import InvalidParameterException
    from moto.logs.models import LogsBackend, LogStream

    if getattr(LogStream._send_log_events, "_mlops_local", False):
        return
    original_send = LogStream._send_log_events
    original_put = LogsBackend.put_subscription_filter

    def put_subscription_filter(
        self: Any,
        log_group_name: str,
        filter_name: str,
        filter_pattern: str,
        destination_arn: str,
        role_arn: str,
    ) -> None:
        try:
            compile_pattern(filter_pattern or "")
        except UnsupportedFilterPattern as exc:
            raise InvalidParameterException(str(exc)) from None
        original_put(self, log_group_name, filter_name, filter_pattern, destination_arn, role_arn)

    def send_log_events(
        self: Any,
        service: str,
        destination_arn: str,
        filter_name: str,
        log_events: list[dict[str, Any]],
    ) -> None:
        subscription = self.log_group.subscription_filters.get(filter_name)
        if subscription is None:
            return
        matches = compile_pattern(subscription.filter_pattern or "")
        events = [event for event in log_events if matches(event["message"])]
        if not events:
            return
        if service == "firehose":
            denial = _role_denial(subscription, self.log_group.arn, destination_arn)
            if denial is not None:
                log.error(
                    "subscription filter %s of log group %s lost %d log events: %s",
                    filter_name,
                    self.log_group.name,
                    len(events),
                    denial,
                )
                return
        original_send(self, service, destination_arn, filter_name, events)

    send_log_events._mlops_local = True  # type: ignore[attr-defined]
    LogStream._send_log_events = send_log_events  # type: ignore[method-assign]
    LogsBackend.put_subscription_filter = put_subscription_filter  # type: ignore[method-assign]
    FirehoseBackend.send_log_event = _send_log_event  # type: ignore[method-assign]


def _role_denial(subscription: Any, log_group_arn: str, stream_arn: str) -> str | None:
    """Why the filter's role may not put to the stream, or None."""
    from infra.local.authz import principals
    from infra.local.authz.enforcer import ENFORCER
    from infra.local.authz.needs import Needed

    if not ENFORCER.enabled:
        return None
    if not subscription.role_arn:
        return "the subscription filter has no RoleArn (a Firehose destination needs one)"
    try:
        session = principals.session_credentials(
            subscription.role_arn, "CWLtoKinesisFirehose", LOGS_SERVICE, source_arn=log_group_arn
        )
    except principals.AssumeRoleDenied as exc:
        return str(exc)
    caller = principals.from_access_key(session.access_key_id, ENFORCER.account)
    if caller is None:
        return None
    denial = ENFORCER.authorize(
        caller, [Needed("firehose:PutRecord", stream_arn)], "logs.subscription"
    )
    return None if denial is None else denial.message


def log_data(
    account: str,
    log_group_name: str,
    log_stream_name: str,
    filter_name: str,
    log_events: list[dict[str, Any]],
) -> bytes:
    """What CloudWatch Logs puts to a subscription's destination: a gzipped DATA_MESSAGE."""
    data = {
        "messageType": "DATA_MESSAGE",
        "owner": account,
        "logGroup": log_group_name,
        "logStream": log_stream_name,
        "subscriptionFilters": [filter_name],
        "logEvents": log_events,
    }
    return gzip.compress(json.dumps(data, separators=(",", ":")).encode())


def check_processing(processing: dict[str, Any]) -> None:
    """Raise ValueError, naming it, for a processor or parameter not emulated locally."""
    for processor in processing.get("Processors") or []:
        kind = processor.get("Type")
        parameters = _parameters(processor)
        if kind not in _PROCESSORS:
            raise ValueError(f"Firehose processor {kind!r} is not emulated locally")
        if kind == "Decompression" and parameters.get("CompressionFormat", "GZIP") != "GZIP":
            raise ValueError(f"Decompression {parameters}: only GZIP is emulated locally")


def _parameters(processor: dict[str, Any]) -> dict[str, Any]:
    return {
        p.get("ParameterName"): p.get("ParameterValue") for p in processor.get("Parameters") or []
    }


def processed(record: bytes, processing: dict[str, Any] | None) -> list[bytes]:
    """A record after the stream's processing: the records Firehose writes for it.

    Raises:
        ValueError: a processor or parameter the local cloud does not implement (named).
    """
    if not processing or not _enabled(processing.get("Enabled", False)):
        return [record]
    check_processing(processing)
    records = [record]
    for processor in processing.get("Processors") or []:
        kind, parameters = processor.get("Type"), _parameters(processor)
        if kind == "Decompression":
            records = [gzip.decompress(r) if r[:2] == b"\x1f\x8b" else r for r in records]
        elif kind == "CloudWatchLogProcessing":
            if _enabled(parameters.get("DataMessageExtraction", "false")):
                records = [message for r in records for message in _messages(r)]
        else:
            delimiter = parameters.get("Delimiter", "\\n").encode().decode("unicode_escape")
            records = [r + delimiter.encode() for r in records]
    return records


def _enabled(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _messages(record: bytes) -> list[bytes]:
    """The messages of a (decompressed) CloudWatch Logs batch; none for a control message."""
    document = json.load(io.BytesIO(record))
    if document.get("messageType") != "DATA_MESSAGE":
        return []
    return [event["message"].encode() for event in document.get("logEvents") or []]


def _send_log_event(
    self: Any,
    delivery_stream_arn: str,
    filter_name: str,
    log_group_name: str,
    log_stream_name: str,
    log_events: list[dict[str, Any]],
) -> None:
    """The replacement for moto's `FirehoseBackend.send_log_event`: CloudWatch Logs' gzipped
    batch, processed as the stream's S3 destination says, then delivered."""
    stream = self.lookup_name_from_arn(delivery_stream_arn)
    destination = stream.destinations[0]
    config = destination.get("ExtendedS3") or destination.get("S3") or {}
    data = log_data(self.account_id, log_group_name, log_stream_name, filter_name, log_events)
    records = processed(data, config.get("ProcessingConfiguration"))
    if not records:
        return
    self.put_s3_records(
        stream.delivery_stream_name,
        stream.version_id,
        destination["S3"],
        [{"Data": record} for record in records],
    )
