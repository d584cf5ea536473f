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
    status, body = call_api(
        base_url, "POST", "/v1/predict", {"instances": instances}, api_key, timeout
    )
    if status >= 400:
        detail = json.dumps(body) if not isinstance(body, str) else body
        raise PredictError(f"POST {_url(base_url, '/v1/predict')}: HTTP {status}: {detail[:2000]}")
    return dict(body)


def call_api(
    base_url: str,
    method: str,
    path: str,
    document: Any = None,
    api_key: str | None = None,
    timeout: float = 30.0,
) -> tuple[int, Any]:
    """One request to the API: (status, body as JSON, or text when it is not JSON). Signed
    with SigV4 for an API on AWS (auth = "iam"); with `api_key`, keyed. Raises PredictError
    when the API cannot be reached."""
    url = _url(base_url, path)
    body = json.dumps(document).encode() if document is not None else None
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if api_key:
        headers["x-api-key"] = api_key
    if urlsplit(url).hostname and str(urlsplit(url).hostname).endswith(".amazonaws.com"):
        headers = _sigv4(url, method, body, headers)
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _decoded(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _decoded(exc.read())
    except (urllib.error.URLError, OSError) as exc:
        raise PredictError(
            f"{method} {url}: {exc} (is the local cloud running? `mlops local up`)"
        ) from None


def _url(base_url: str, path: str) -> str:
    return urljoin(base_url if base_url.endswith("/") else base_url + "/", path.lstrip("/"))


def _decoded(data: bytes) -> Any:
    text = data.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text[:2000]


def _sigv4(url: str, method: str, body: bytes | None, headers: dict[str, str]) -> dict[str, str]:
    """Headers signed for execute-api with the caller's AWS credentials (auth = "iam")."""
    import boto3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    session = boto3.session.Session()
    credentials = session.get_credentials()
    if credentials is None:
        raise PredictError("the API uses IAM auth: configure AWS credentials to sign requests")
    region = str(urlsplit(url).hostname).split(".")[2]
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(credentials, "execute-api", region).add_auth(request)
    return dict(request.headers.items())
