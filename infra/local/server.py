"""moto's HTTP server in a thread of this process, so hooks and backends are shared with the
caller (the CLI or a test) and `aws --endpoint-url` / `AWS_ENDPOINT_URL` clients (function
workers among them) can reach it. Every request passes the AWS call boundary first
(`infra.local.faults.FaultBoundary`)."""

from __future__ import annotations

import json
import logging
import os
import socket
import urllib.request
from typing import Any

from moto.core.config import default_user_config
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from infra.local.boundary import CallBoundary
from infra.local.sfn_engine import EXECUTE


class _BoundedMotoServer(ThreadedMotoServer):
    """moto's threaded server with the call boundary in front of its WSGI app."""

    def _server_entry(self) -> None:
        app = CallBoundary(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4566


class MotoServer:
    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        self._server = _BoundedMotoServer(ip_address=host, port=port, verbose=False)
        self._host = host
        self._port = port
        self._started = False
        self._saved_port: str | None = None
        self._saved_sfn_config: Any = None
        self._saved_iam_config: Any = None
        self.endpoint = ""

    def start(self) -> str:
        """Start serving, reset every backend and turn real Step Functions execution on."""
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        _check_free(self._host, self._port)
        self._server.start()
        self._started = True
        _, port = self._server.get_host_and_port()
        self.endpoint = f"http://{self._host}:{port}"
        # moto's Step Functions interpreter calls Lambda, SNS, ... at localhost:$MOTO_PORT.
        self._saved_port = os.environ.get("MOTO_PORT")
        os.environ["MOTO_PORT"] = str(port)
        self._saved_sfn_config = default_user_config.get("stepfunctions")
        self._saved_iam_config = default_user_config.get("iam")
        # AWS managed policies (AWSLambdaBasicExecutionRole, ...) exist, so a role can attach
        # one and IAM enforcement evaluates it as AWS would. The server shares this process's
        # moto config (its /moto-api/config endpoint does not take IAM settings).
        default_user_config["iam"] = {
            **(self._saved_iam_config or {}),
            "load_aws_managed_policies": True,
        }
        self._post("/moto-api/reset", {})
        self._post("/moto-api/config", {"stepfunctions": dict(EXECUTE)})
        return self.endpoint

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self._server.stop()
        if self._saved_sfn_config is not None:
            default_user_config["stepfunctions"] = self._saved_sfn_config
        if self._saved_iam_config is not None:
            default_user_config["iam"] = self._saved_iam_config
        if self._saved_port is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = self._saved_port

    def _post(self, path: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(
            self.endpoint + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


def _check_free(host: str, port: int) -> None:
    """Fail fast on a busy port: ThreadedMotoServer would wait forever for its server thread."""
    if port == 0:
        return
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OSError(
                f"cannot listen on {host}:{port} ({exc.strerror}): is a local cloud already "
                "running? Choose another port with --port."
            ) from None
