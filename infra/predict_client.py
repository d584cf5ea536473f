"""A client of the serving API for `mlops predict`: where the API is (the local cloud's
outputs.json, or a URL), and one signed or keyed POST /v1/predict."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from infra.local.api_adapter import DEFAULT_API_PORT

LOCAL_API_URL = f"http://127.0.0.1:{DEFAULT_API_PORT}/"


class PredictError(RuntimeError):
    """The API could not be reached or refused the request (the message says why)."""


def default_api_url(state_dir: Path) -> str:
    """ApiUrl of the running local cloud (its outputs.json), else the default local port."""
    outputs = state_dir / "outputs.json"
    if outputs.exists():
        url = json.loads(outputs.read_text(encoding="utf-8")).get("ApiUrl")
        if url:
            return str(url)
    return LOCAL_API_URL


def call_predict(
    base_url: str, instances: list[Any], api_key: str | None = None, timeout: float = 30.0
) -> dict[str, Any]:
    url = urljoin(base_url if base_url.endswith("/") else base_url + "/", "v1/predict")
    body = json.dumps({"instances": instances}).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["x-api-key"] = api_key
    if urlsplit(url).hostname and str(urlsplit(url).hostname).endswith(".amazonaws.com"):
        headers = _sigv4(url, body, headers)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:2000]
        raise PredictError(f"POST {url}: HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise PredictError(
            f"POST {url}: {exc} (is the local cloud running? `mlops local up`)"
        ) from None


def _sigv4(url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
    """Headers signed for execute-api with the caller's AWS credentials (auth = "iam")."""
    import boto3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    session = boto3.session.Session()
    credentials = session.get_credentials()
    if credentials is None:
        raise PredictError("the API uses IAM auth: configure AWS credentials to sign requests")
    region = str(urlsplit(url).hostname).split(".")[2]
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(credentials, "execute-api", region).add_auth(request)
    return dict(request.headers.items())
