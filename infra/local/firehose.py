"""Firehose's delivery to S3, as the service makes it.

- Custom S3 prefixes: `!{timestamp:yyyy-MM-dd}` (Java date pattern, UTC) and
  `!{firehose:random-string}` expanded as the service does. moto appends its own
  `YYYY/MM/DD/HH/` instead, so capture objects would not land under capture/dt=YYYY-MM-DD/.
- The delivery writes with the stream's role (`RoleARN`, a session Firehose assumed): a role
  that may not put the object loses the records, logged as a delivery error; the producer's
  PutRecord(Batch) still succeeds, as on AWS, where a failed delivery never reaches it.
"""

from __future__ import annotations

import logging
import re
import secrets
import string
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("infra.local.firehose")
FIREHOSE_SERVICE = "firehose.amazonaws.com"
_EXPRESSION = re.compile(r"!\{(timestamp|firehose):([^}]*)\}")
_JAVA_TO_STRFTIME = [
    ("yyyy", "%Y"),
    ("yy", "%y"),
    ("MM", "%m"),
    ("dd", "%d"),
    ("HH", "%H"),
    ("mm", "%M"),
    ("ss", "%S"),
]


def expand_prefix(prefix: str, now: datetime | None = None, error_type: str = "") -> str:
    """The prefix with Firehose's `!{namespace:value}` expressions evaluated at `now`."""
    moment = now or datetime.now(UTC)

    def evaluate(match: re.Match[str]) -> str:
        namespace, value = match.groups()
        if namespace == "timestamp":
            pattern = value
            for java, strftime in _JAVA_TO_STRFTIME:
                pattern = pattern.replace(java, strftime)
            return moment.strftime(pattern)
        if value == "random-string":
            alphabet = string.ascii_lowercase + string.digits
            return "".join(secrets.choice(alphabet) for _ in range(11))
        if value == "error-output-type":
            return error_type or "processing-failed"
        raise ValueError(f"unsupported Firehose prefix expression !{{firehose:{value}}}")

    return _EXPRESSION.sub(evaluate, prefix)


def install() -> None:
    """Make moto's S3 object keys follow custom prefixes (idempotent)."""
    from moto.firehose.models import FirehoseBackend

    original = FirehoseBackend._format_s3_object_path
    if getattr(original, "_mlops_local", False):
        return

    def object_path(delivery_stream_name: str, version_id: str, prefix: str) -> str:
        if "!{" not in prefix:
            return original(delivery_stream_name, version_id, prefix)
        now = datetime.now(UTC)
        return (
            f"{expand_prefix(prefix, now)}{delivery_stream_name}-{version_id}-"
            f"{now.strftime('%Y-%m-%d-%H-%M-%S')}-{secrets.token_hex(8)}"
        )

    object_path._mlops_local = True  # type: ignore[attr-defined]
    FirehoseBackend._format_s3_object_path = staticmethod(object_path)  # type: ignore[method-assign,assignment]


def deliver_with_role() -> None:
    """Authorize each delivery to S3 as the stream's role (idempotent)."""
    from moto.firehose.models import FirehoseBackend
    from moto.moto_api._internal import mock_random
    from moto.s3.models import s3_backends

    original = FirehoseBackend.put_s3_records
    if getattr(original, "_mlops_role", False):
        return

    def put_s3_records(
        self: Any,
        delivery_stream_name: str,
        version_id: str,
        s3_destination: dict[str, Any],
        records: list[dict[str, bytes]],
    ) -> list[dict[str, str]]:
        bucket = s3_destination["BucketARN"].split(":")[-1]
        key = self._format_s3_object_path(
            delivery_stream_name, version_id, s3_destination.get("Prefix", "")
        )
        answer = [{"RecordId": str(mock_random.uuid4())} for _ in records]
        denial = _authorize(
            self.account_id, s3_destination.get("RoleARN"), bucket, key, delivery_stream_name
        )
        if denial is not None:
            log.error(
                "delivery stream %s could not deliver %d records to s3://%s/%s: %s",
                delivery_stream_name,
                len(records),
                bucket,
                key,
                denial,
            )
            return answer
        s3_backends[self.account_id][self.partition].put_object(
            bucket, key, b"".join(record["Data"] for record in records)
        )
        return answer

    put_s3_records._mlops_role = True  # type: ignore[attr-defined]
    FirehoseBackend.put_s3_records = put_s3_records  # type: ignore[method-assign]


def _authorize(account: str, role: str | None, bucket: str, key: str, stream: str) -> str | None:
    """Why the stream's role may not write the object, or None."""
    from infra.local.authz import principals
    from infra.local.authz.enforcer import ENFORCER
    from infra.local.authz.needs import Needed

    if not ENFORCER.enabled:
        return None
    if not role:
        return "the delivery stream has no RoleARN"
    try:
        session = principals.session_credentials(
            role,
            "firehose",
            FIREHOSE_SERVICE,
            source_arn=f"arn:aws:firehose:{ENFORCER.region}:{account}:deliverystream/{stream}",
        )
    except principals.AssumeRoleDenied as exc:
        return str(exc)
    caller = principals.from_access_key(session.access_key_id, account)
    if caller is None:
        return None
    denial = ENFORCER.authorize(
        caller, [Needed("s3:PutObject", f"arn:aws:s3:::{bucket}/{key}")], "firehose.delivery"
    )
    return None if denial is None else denial.message
