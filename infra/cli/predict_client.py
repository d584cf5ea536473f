"""A client of the serving API for `mlops predict`: where the API is (the local cloud's
outputs.json, or a URL), and one signed or keyed POST to a model's predict route:
`/v1/models/<name>/predict`, or `/v1/predict` for the API's default model.

Requests are signed with SigV4 for `execute-api`, as an API with IAM authorization
(`[serving] auth = "iam"`) requires: on AWS with the caller's AWS credentials, on the local
cloud with its operator's (`testing`), or with the credentials given."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
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


@dataclass(frozen=True)
class SigningCredentials:
    access_key: str
    secret_key: str
    session_token: str | None = None


LOCAL_OPERATOR = SigningCredentials("testing", "testing")
"""The local cloud's operator, who may call every route."""


def predict_route(model: str | None = None) -> str:
    """The predict route of `model`, or of the API's default model when None."""
    return "/v1/predict" if model is None else f"/v1/models/{model}/predict"


def call_predict(
    base_url: str,
    instances: list[Any],
    api_key: str | None = None,
    timeout: float = 30.0,
    model: str | None = None,
) -> dict[str, Any]:
    """The predictions of `model` (the API's default model when None) for `instances`."""
    route = predict_route(model)
    status, body = call_api(base_url, "POST", route, {"instances": instances}, api_key, timeout)
    if status >= 400:
        detail = json.dumps(body) if not isinstance(body, str) else body
        raise PredictError(f"POST {_url(base_url, route)}: HTTP {status}: {detail[:2000]}")
    return dict(body)


def call_api(
    base_url: str,
    method: str,
    path: str,
    document: Any = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    credentials: SigningCredentials | None = None,
) -> tuple[int, Any]:
    """One request to the API: (status, body as JSON, or text when it is not JSON), signed
    (see the module's docstring); with `api_key`, keyed. Raises PredictError when the API
    cannot be reached."""
    url = _url(base_url, path)
    body = json.dumps(document).encode() if document is not None else None
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if api_key:
        headers["x-api-key"] = api_key
    request = signed_request(url, method, body, headers, credentials)
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


def signed_request(
    url: str,
    method: str,
    body: bytes | None,
    headers: dict[str, str],
    credentials: SigningCredentials | None = None,
) -> urllib.request.Request:
    """A request to the API signed with SigV4 for execute-api: with `credentials`, else the
    caller's AWS credentials for an API on AWS, the local operator's for a local one."""
    return urllib.request.Request(
        url,
        data=body,
        headers=signed_headers(url, method, body, headers, credentials),
        method=method,
    )


def signed_headers(
    url: str,
    method: str,
    body: bytes | None,
    headers: dict[str, str],
    credentials: SigningCredentials | None = None,
) -> dict[str, str]:
    """`headers` with the SigV4 signature added (see `signed_request`)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    host = str(urlsplit(url).hostname or "")
    on_aws = host.endswith(".amazonaws.com")
    region = host.split(".")[2] if on_aws and host.count(".") >= 3 else "us-east-1"
    if credentials is not None:
        signing: Any = Credentials(
            credentials.access_key, credentials.secret_key, credentials.session_token
        )
    elif on_aws:
        import boto3

        signing = boto3.session.Session().get_credentials()
        if signing is None:
            raise PredictError("the API uses IAM auth: configure AWS credentials to sign requests")
    else:
        signing = Credentials(LOCAL_OPERATOR.access_key, LOCAL_OPERATOR.secret_key)
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(signing, "execute-api", region).add_auth(request)
    return dict(request.headers.items())
