"""One function worker: a process that behaves like one Lambda execution environment, and
the protocol between it and the local cloud.

- The process runs the function's runtime's Python (`infra.cdk.function_env`: 3.13, or the image
  base's) with `sys.path` exactly the function's deployed code and packages (the host twin of
  its layers or image), through `infra.local.worker_runtime`, Lambda's bootstrap for one
  environment. Its environment is the function's (from the template, resolved at deploy)
  plus Lambda's reserved variables; its AWS calls go to the local cloud's endpoint. Its /tmp
  is private (`infra.local.worker_limits`).
- The channel: length-prefixed JSON messages over two pipes. The worker sends `ready` (or
  `init_error`) once its init (importing the handler) is done, then one result per `invoke`
  message. What the function prints (its log lines) comes on the process's stdout; the
  runtime marks the end of each invocation's output there (`END_MARKER`).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.local.worker_limits import directory_mb, peak_memory_mb, private_tmp_script, sandbox
from infra.local.worker_runtime import frame, read_message

RUNTIME_SCRIPT = Path(__file__).with_name("worker_runtime.py")
END_MARKER = "\x00mlops-end "
_LOG_SETTLE_SECONDS = 5.0


@dataclass(frozen=True)
class WorkerSpec:
    """What one function's execution environments are made of; when any of it changes (a
    configuration or code update), new environments are made, as Lambda does."""

    function_name: str
    arn: str
    python: str
    paths: tuple[str, ...]
    """`sys.path` entries ahead of the standard library: task root, layers' `python/`."""
    site_dirs: tuple[str, ...]
    """Site directories (an image's site-packages: `.pth` files apply)."""
    handler: str
    task_root: str
    environment: tuple[tuple[str, str], ...]
    memory_mb: int
    timeout_seconds: float
    ephemeral_storage_mb: int
    log_group_name: str
    reserved_concurrency: int | None = None


@dataclass
class Outcome:
    payload: str
    errored: bool
    logs: list[str] = field(default_factory=list)
    duration_ms: float = 0.0
    init_ms: float | None = None
    max_memory_mb: int = 0
    error_type: str | None = None
    """Set when the runtime (not the handler) failed the invocation."""


class WorkerDied(Exception):
    pass


class Worker:
    """One execution environment: a process, its channel and its log. What the process
    prints is also echoed on this process's stdout while `echo_output()` says so."""

    def __init__(
        self, spec: WorkerSpec, endpoint: str | None, echo_output: Callable[[], bool]
    ) -> None:
        self.spec = spec
        self._echo_output = echo_output
        self.id = uuid.uuid4().hex[:12]
        self.log_stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{self.id}"
        self.init_ms: float | None = None
        self.invocations = 0
        self.last_used = time.monotonic()
        self.killed_for: str | None = None
        self.started = time.monotonic()
        self.prewarmed = False
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._init_done = threading.Event()
        self._init_outcome: dict[str, Any] | None = None
        self.initialized = False
        """Init succeeded (the worker answers invocations)."""
        self._log_lock = threading.Condition()
        self._log: list[str] = []
        self._ended: set[str] = set()
        self._tmp_dir: Path | None = None
        to_child_read, to_child_write = os.pipe()
        from_child_read, from_child_write = os.pipe()
        config = {
            "paths": list(spec.paths),
            "site_dirs": list(spec.site_dirs),
            "handler": spec.handler,
            "function_name": spec.function_name,
            "arn": spec.arn,
            "memory_mb": spec.memory_mb,
            "log_group_name": spec.log_group_name,
            "log_stream_name": self.log_stream,
            "read_fd": to_child_read,
            "write_fd": from_child_write,
        }
        command, environment = self._command(config, endpoint)
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=spec.task_root,
                pass_fds=(to_child_read, from_child_write),
                start_new_session=True,
            )
        finally:
            os.close(to_child_read)
            os.close(from_child_write)
        self._to_child = os.fdopen(to_child_write, "wb", buffering=0)
        self._from_child = os.fdopen(from_child_read, "rb", buffering=0)
        threading.Thread(target=self._read_messages, daemon=True, name="worker-channel").start()
        threading.Thread(target=self._read_output, daemon=True, name="worker-output").start()

    def _command(
        self, config: dict[str, Any], endpoint: str | None
    ) -> tuple[list[str], dict[str, str]]:
        spec = self.spec
        environment = dict(spec.environment)
        environment.update(
            {
                "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream,
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            }
        )
        if endpoint is not None:
            environment["AWS_ENDPOINT_URL"] = endpoint
        python = [spec.python, "-I", "-S", "-B", "-u", str(RUNTIME_SCRIPT), json.dumps(config)]
        box = sandbox()
        if box.isolated:
            needed = (
                spec.python,
                str(RUNTIME_SCRIPT),
                spec.task_root,
                *spec.paths,
                *spec.site_dirs,
            )
            script = private_tmp_script(spec.ephemeral_storage_mb, needed)
            return [*box.prefix, "sh", "-c", script, "worker", *python], environment
        # No private /tmp here: a private directory stands for it (TMPDIR), size-checked.
        self._tmp_dir = Path(tempfile.mkdtemp(prefix=f"lambda-{spec.function_name[:40]}-"))
        environment["TMPDIR"] = str(self._tmp_dir)
        return python, environment

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def _read_messages(self) -> None:
        try:
            while True:
                message = read_message(self._from_child)
                if message is None:
                    break
                if not self._init_done.is_set():
                    self._finish_init(message)
                else:
                    self._messages.put(message)
        except (OSError, ValueError):
            pass
        if not self._init_done.is_set():
            self._finish_init({"type": "exited", "code": self.process.wait()})
        self._messages.put(None)

    def _finish_init(self, outcome: dict[str, Any]) -> None:
        if outcome.get("type") == "ready":
            self.init_ms = float(outcome.get("init_ms", 0.0))
            self.initialized = True
        self._init_outcome = outcome
        self._init_done.set()

    def _read_output(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            with self._log_lock:
                if line.startswith(END_MARKER):
                    self._ended.add(line.removeprefix(END_MARKER))
                else:
                    self._log.append(line)
                    if self._echo_output():
                        print(line, file=sys.__stdout__, flush=True)
                self._log_lock.notify_all()
        with self._log_lock:
            self._ended.add("")  # the process is gone: no more output will come
            self._log_lock.notify_all()

    def take_log(self, request_id: str | None = None) -> list[str]:
        """The output since the last call; with `request_id`, first wait (briefly) until the
        runtime marked that invocation's output complete."""
        with self._log_lock:
            if request_id is not None:
                self._log_lock.wait_for(
                    lambda: request_id in self._ended or "" in self._ended,
                    timeout=_LOG_SETTLE_SECONDS,
                )
                self._ended.discard(request_id)
            lines, self._log = self._log, []
            return lines

    def wait_ready(self, timeout: float) -> dict[str, Any] | None:
        """The init outcome (`ready` or `init_error`), None if it did not come in time; a
        process that ended during init gives `{"type": "exited"}`."""
        if not self._init_done.wait(timeout):
            return None
        return self._init_outcome

    def send(self, message: dict[str, Any]) -> None:
        try:
            self._to_child.write(frame(message))
        except OSError as exc:
            raise WorkerDied(str(exc)) from None

    def result(self, timeout: float) -> dict[str, Any] | None:
        """The invocation's result; None when the deadline passed. Raises WorkerDied."""
        try:
            message = self._messages.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None
        if message is None:
            raise WorkerDied(f"exit status {self.process.wait()}")
        return message

    def peak_memory_mb(self) -> float:
        return peak_memory_mb(self.pid)

    def tmp_usage_mb(self) -> float:
        """What the stand-in /tmp holds (0 with a private tmpfs: its size is its limit)."""
        return 0.0 if self._tmp_dir is None else directory_mb(self._tmp_dir)

    def kill(self, reason: str) -> None:
        self.killed_for = self.killed_for or reason
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.process.wait(timeout=10)
        for stream in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                stream.close()
        if self._tmp_dir is not None:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
