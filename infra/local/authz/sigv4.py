"""Signature Version 4 checked as API Gateway checks it for a method with IAM authorization:
the signature is computed again from the request and the signer's secret (botocore's signer,
the one the SDKs use) and must match; the request must be signed for the service within
15 minutes of now."""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/"
    r"(?P<service>[^/,\s]+)/aws4_request,\s*SignedHeaders=(?P<signed>[^,\s]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
MAX_SKEW_SECONDS = 15 * 60


@dataclass(frozen=True)
class Verified:
    access_key: str
    region: str


@dataclass(frozen=True)
class Rejected:
    error_type: str
    """API Gateway's `x-amzn-ErrorType`."""
    message: str


def verify(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    service: str,
    secret_for: Callable[[str], str | None],
    now: datetime | None = None,
) -> Verified | Rejected:
    """Check the request's SigV4 signature (`headers` with lower-case names; `url` as the
    client addressed it, host included)."""
    authorization = headers.get("authorization", "")
    if not authorization:
        return Rejected("MissingAuthenticationTokenException", "Missing Authentication Token")
    match = _AUTHORIZATION.match(authorization)
    if match is None or match.group("service") != service:
        return Rejected(
            "IncompleteSignatureException",
            f"Authorization header requires a valid AWS4-HMAC-SHA256 signature for {service}",
        )
    secret = secret_for(match.group("key"))
    if secret is None:
        return Rejected(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    stamp = headers.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return Rejected("IncompleteSignatureException", "Missing or invalid X-Amz-Date header")
    moment = now or datetime.now(UTC)
    if abs((moment - signed_at).total_seconds()) > MAX_SKEW_SECONDS:
        return Rejected("InvalidSignatureException", "Signature expired")
    expected = _signature(method, url, headers, body, match, secret, stamp)
    if not hmac.compare_digest(expected, match.group("signature")):
        return Rejected(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details.",
        )
    return Verified(match.group("key"), match.group("region"))


def _signature(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    match: re.Match[str],
    secret: str,
    stamp: str,
) -> str:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    signed = match.group("signed").split(";")
    request = AWSRequest(
        method=method,
        url=url,
        data=body,
        headers={name: headers.get(name, "") for name in signed},
    )
    request.context["timestamp"] = stamp
    token = headers.get("x-amz-security-token")
    signer = SigV4Auth(
        Credentials(match.group("key"), secret, token),
        match.group("service"),
        match.group("region"),
    )
    canonical = signer.canonical_request(request)
    return str(signer.signature(signer.string_to_sign(request, canonical), request))
