"""Function workers: each invocation of a local function runs in a worker process that behaves
like a Lambda execution environment.

- A worker runs the function's runtime's Python (`infra.function_env`: 3.13, or the image
  base's) with `sys.path` exactly the function's deployed code and packages (the host twin of
  its layers or image), through `infra.local.worker_runtime`, Lambda's bootstrap for one
  environment. Its environment is the function's (from the template, resolved at deploy)
  plus Lambda's reserved variables; its AWS calls go to the local cloud's endpoint.
- Init (importing the handler) runs once, then the worker answers invocations while warm. A
  handled error keeps it; a crash, a timeout or running out of memory resets it (the process
  is killed and the next invocation starts a new one), as Lambda resets an execution
  environment.
- Limits, with the error names Lambda reports: the timeout (`Sandbox.Timedout`: the worker is
  killed at the deadline), `MemorySize` (`Runtime.OutOfMemory`: the worker's peak resident
  memory, polled, went over it), init longer than `INIT_LIMIT_SECONDS` (retried once within
  the invocation's timeout, as Lambda does for on-demand functions), an exit
  (`Runtime.ExitError`), and `EphemeralStorage`: a private tmpfs of that size at /tmp (Linux
  mount namespace, `unshare`); where the OS refuses, a private directory as TMPDIR, checked
  after each invocation.
- Concurrency: several workers per function run at once, up to its reserved concurrency
  (beyond it, Lambda throttles: `TooManyRequestsException`) and a local cap per function
  (beyond it, invocations wait for a worker), and at most `max_workers` in all (idle workers
  of other functions are stopped first).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("infra.local.workers")

RUNTIME_SCRIPT = Path(__file__).with_name("worker_runtime.py")
END_MARKER = "\x00mlops-end "
INIT_LIMIT_SECONDS = 10.0
"""Lambda's limit on the init phase of an on-demand function."""
_HEADER = struct.Struct(">I")
_MEMORY_POLL_SECONDS = 0.01
_LOG_SETTLE_SECONDS = 5.0
_MIB = 1 << 20


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


class ThrottledError(Exception):
    """The function is at its reserved concurrency (Lambda: `TooManyRequestsException`)."""


def _error_payload(error_type: str, message: str) -> str:
    return json.dumps({"errorType": error_type, "errorMessage": message, "stackTrace": []})


# The sandbox: a private /tmp


@dataclass(frozen=True)
class Sandbox:
    """How workers get their private, size-limited /tmp."""

    prefix: tuple[str, ...]
    """Command prefix that makes a private mount namespace (empty: not available)."""
    reason: str = ""

    @property
    def isolated(self) -> bool:
        return bool(self.prefix)


_SANDBOX: Sandbox | None = None
_SANDBOX_LOCK = threading.Lock()


def sandbox() -> Sandbox:
    """Probe once whether this machine lets a process mount its own tmpfs (root, or
    unprivileged user namespaces)."""
    global _SANDBOX
    with _SANDBOX_LOCK:
        if _SANDBOX is None:
            _SANDBOX = _probe_sandbox()
        return _SANDBOX


def _probe_sandbox() -> Sandbox:
    unshare = shutil.which("unshare")
    if sys.platform != "linux" or unshare is None:
        return Sandbox((), "no Linux mount namespaces (unshare) on this machine")
    prefixes = [(unshare, "-m", "--propagation", "private")]
    if os.geteuid() != 0:
        prefixes = [(unshare, "-Urm", "--propagation", "private")]
    for prefix in prefixes:
        probe = [*prefix, "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /tmp && test -w /tmp"]
        try:
            result = subprocess.run(probe, capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if result.returncode == 0:
            return Sandbox(prefix)
        reason = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["refused"]
    return Sandbox((), f"mounting a private tmpfs was refused ({reason[0]})")


# One worker


class WorkerDied(Exception):
    pass


class Worker:
    """One execution environment: a process, its channel and its log."""

    def __init__(self, spec: WorkerSpec, endpoint: str | None) -> None:
        self.spec = spec
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
            return [*box.prefix, "sh", "-c", _private_tmp_script(spec), "worker", *python], (
                environment
            )
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
                header = self._exactly(_HEADER.size)
                if header is None:
                    break
                body = self._exactly(_HEADER.unpack(header)[0])
                if body is None:
                    break
                message = json.loads(body)
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

    def _exactly(self, size: int) -> bytes | None:
        chunks, remaining = [], size
        while remaining:
            chunk = self._from_child.read(remaining)
            if not chunk:
                return None
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _read_output(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            with self._log_lock:
                if line.startswith(END_MARKER):
                    self._ended.add(line.removeprefix(END_MARKER))
                else:
                    self._log.append(line)
                    if WORKERS.echo_output:
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
        data = json.dumps(message).encode("utf-8")
        try:
            self._to_child.write(_HEADER.pack(len(data)) + data)
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
        """The process's peak resident memory (VmHWM), plus the current memory of the
        processes it started (rare: read from /proc only when it has any)."""
        peak = _status_kib(self.pid, "VmHWM") / 1024
        children = _children(self.pid)
        if children:
            with contextlib.suppress(Exception):
                import psutil

                for child in psutil.Process(self.pid).children(recursive=True):
                    peak += child.memory_info().rss / _MIB
        return peak

    def tmp_usage_mb(self) -> float:
        if self._tmp_dir is None:
            return 0.0
        total = 0
        for path in self._tmp_dir.rglob("*"):
            with contextlib.suppress(OSError):
                if path.is_file():
                    total += path.stat().st_size
        return total / _MIB

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


def _under_tmp(path: str) -> bool:
    resolved = Path(path).resolve()
    return resolved == Path("/tmp") or Path("/tmp") in resolved.parents


def _private_tmp_script(spec: WorkerSpec) -> str:
    """Shell commands, run in the worker's own mount namespace, that mount a tmpfs of the
    function's ephemeral storage at /tmp. What the worker runs from under this machine's
    /tmp (a checkout there, the interpreter) is bound back into it at the same path, from the
    /tmp the namespace had before (held open as fd 9), so it stays readable."""
    import shlex

    needed = (spec.python, str(RUNTIME_SCRIPT), spec.task_root, *spec.paths, *spec.site_dirs)
    tops = sorted(
        {
            parts[0]
            for path in needed
            if _under_tmp(path) and (parts := Path(path).resolve().relative_to("/tmp").parts)
        }
    )
    steps = [
        "exec 9</tmp",
        f"mount -t tmpfs -o size={spec.ephemeral_storage_mb}m,mode=1777 tmpfs /tmp",
    ]
    for top in tops:
        target = shlex.quote(f"/tmp/{top}")
        source = shlex.quote(f"/proc/self/fd/9/{top}")
        steps.append(f"mkdir -p {target} && mount --no-canonicalize --bind {source} {target}")
    steps += ["exec 9<&-", 'exec "$@"']
    return " && ".join(steps)


def _children(pid: int) -> str:
    """The ids of a process's children, as /proc lists them (empty: none, or not listed)."""
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().strip()
    except OSError:
        return ""


def _status_kib(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


# The pool


class _FunctionWorkers:
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.idle: list[Worker] = []
        self.busy: set[Worker] = set()


class WorkerPool:
    """Every function's workers, with the limits and the bookkeeping (invocation intervals,
    for tests and benchmarks)."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._functions: dict[str, _FunctionWorkers] = {}
        self._busy_memory: dict[Worker, int] = {}
        """Workers whose memory is watched (in init or in an invocation) -> their limit."""
        self._invoking: set[Worker] = set()
        self._monitor: threading.Thread | None = None
        self._stopped = threading.Event()
        self.endpoint: str | None = None
        self.per_function = max(2, os.cpu_count() or 2)
        """Workers of one function at once when it has no reserved concurrency."""
        self.max_workers = 16
        """Live workers in all; idle ones of other functions are stopped to make room."""
        self.echo_output = True
        self.intervals: list[tuple[str, float, float]] = []
        """(function name, start, end) of every invocation, in `time.monotonic()` seconds."""

    # lifecycle

    def reset(self) -> None:
        """Stop every worker (a new local cloud starts)."""
        with self._lock:
            workers = [w for fw in self._functions.values() for w in (*fw.idle, *fw.busy)]
            self._functions.clear()
            self.intervals = []
            self._lock.notify_all()
        for worker in workers:
            worker.kill("the local cloud stopped")

    def prewarm(self, specs: list[WorkerSpec]) -> None:
        """Start one worker per function ahead of its first invocation, as Lambda may
        (proactive initialization), at most as many at once as this machine has cores; each
        waits idle, initialized or initializing, for an invocation to take it."""
        gate = threading.Semaphore(os.cpu_count() or 2)

        def start(spec: WorkerSpec) -> None:
            with gate:
                with self._lock:
                    entry = self._functions.get(spec.function_name)
                    if entry is None or entry.spec != spec:
                        entry = self._functions[spec.function_name] = _FunctionWorkers(spec)
                    if entry.idle or entry.busy or not self._make_room():
                        return
                    worker = Worker(spec, self.endpoint)
                    worker.prewarmed = True
                    entry.idle.append(worker)
                    self._busy_memory[worker] = spec.memory_mb  # its init counts too
                    self._lock.notify_all()
                self._ensure_monitor()
                worker.wait_ready(INIT_LIMIT_SECONDS)
                with self._lock:
                    if worker.invocations == 0 and worker not in self._invoking:
                        self._busy_memory.pop(worker, None)

        for spec in specs:
            threading.Thread(target=start, args=(spec,), daemon=True, name="prewarm").start()

    def workers_of(self, function_name: str) -> list[Worker]:
        with self._lock:
            entry = self._functions.get(function_name)
            return [*entry.idle, *entry.busy] if entry else []

    # invocation

    def invoke(self, spec: WorkerSpec, request_id: str, event: str) -> Outcome:
        """Run one invocation in a warm worker of `spec`, or a new one. Raises
        ThrottledError at the function's reserved concurrency."""
        self._ensure_monitor()
        worker, cold = self._acquire(spec)
        started = time.monotonic()
        reusable = False
        with self._lock:
            self._invoking.add(worker)
            self._busy_memory[worker] = spec.memory_mb
        try:
            outcome, reusable, worker = self._run(worker, cold, request_id, event)
            return outcome
        finally:
            ended = time.monotonic()
            with self._lock:
                self.intervals.append((spec.function_name, started, ended))
                self._invoking.discard(worker)
                self._busy_memory.pop(worker, None)
            self._release(worker, reusable)

    def _run(
        self, worker: Worker, cold: bool, request_id: str, event: str
    ) -> tuple[Outcome, bool, Worker]:
        """The invocation's outcome, whether its worker may be reused, and the worker (a new
        one when init over its limit was retried)."""
        spec = worker.spec
        deadline = time.monotonic() + spec.timeout_seconds
        init_ms: float | None = None
        if cold:
            # A worker initialized ahead (`prewarm`) may still be in its init: wait for it.
            proactive = worker.prewarmed and worker.initialized
            remaining = INIT_LIMIT_SECONDS - (time.monotonic() - worker.started)
            ready = worker.wait_ready(max(0.0, remaining))
            if ready is None:
                # Lambda retries an init over its limit once, within the invocation's timeout.
                log.warning(
                    "function %s: init over %.0f s: retried within the timeout",
                    spec.function_name,
                    INIT_LIMIT_SECONDS,
                )
                worker.kill("init timed out")
                worker = self._replace(worker)
                deadline = time.monotonic() + spec.timeout_seconds
                ready = worker.wait_ready(spec.timeout_seconds)
                if ready is None:
                    return self._timed_out(worker, request_id, deadline), False, worker
            if ready["type"] != "ready":
                return self._init_failed(worker, ready), False, worker
            # An init done before the invocation came is not part of it.
            init_ms = None if proactive else worker.init_ms
        worker.invocations += 1
        begin = time.monotonic()
        try:
            worker.send(
                {
                    "type": "invoke",
                    "request_id": request_id,
                    "event": event,
                    "deadline_ms": int((time.time() + (deadline - begin)) * 1000),
                    "invoked_function_arn": spec.arn,
                }
            )
            message = worker.result(deadline - time.monotonic())
        except WorkerDied as exc:
            return self._died(worker, request_id, str(exc), begin), False, worker
        if message is None:
            return self._timed_out(worker, request_id, deadline), False, worker
        outcome = Outcome(
            payload=str(message["payload"]),
            errored=bool(message["errored"]),
            logs=worker.take_log(request_id),
            duration_ms=(time.monotonic() - begin) * 1000,
            init_ms=init_ms,
            max_memory_mb=round(worker.peak_memory_mb()),
        )
        over = worker.tmp_usage_mb() - spec.ephemeral_storage_mb
        if over > 0:
            worker.kill("ephemeral storage")
            outcome = Outcome(
                _error_payload(
                    "Runtime.EphemeralStorageExceeded",
                    f"RequestId: {request_id} Error: /tmp holds {over:.0f} MB more than the "
                    f"function's {spec.ephemeral_storage_mb} MB of ephemeral storage",
                ),
                True,
                outcome.logs,
                outcome.duration_ms,
                init_ms,
                outcome.max_memory_mb,
                "Runtime.EphemeralStorageExceeded",
            )
            return outcome, False, worker
        return outcome, True, worker

    def _init_failed(self, worker: Worker, ready: dict[str, Any]) -> Outcome:
        if worker.killed_for == "out of memory":
            logs = worker.take_log()
            worker.kill("init out of memory")
            message = "Runtime exited with error: signal: killed"
            payload = _error_payload("Runtime.OutOfMemory", message)
            return Outcome(
                payload, True, logs, 0.0, None, worker.spec.memory_mb, "Runtime.OutOfMemory"
            )
        if ready["type"] == "exited":
            message = f"Runtime exited with error: exit status {ready['code']}"
            payload = _error_payload("Runtime.ExitError", message)
            error_type = "Runtime.ExitError"
        else:
            error = ready["error"]
            payload = json.dumps(error)
            error_type = str(error.get("errorType"))
        logs = worker.take_log()
        worker.kill("init failed")
        log.warning("function %s: init failed: %s", worker.spec.function_name, payload[:300])
        return Outcome(payload, True, logs, 0.0, worker.init_ms, 0, error_type)

    def _timed_out(self, worker: Worker, request_id: str, deadline: float) -> Outcome:
        spec = worker.spec
        worker.kill("timed out")
        message = (
            f"RequestId: {request_id} Error: Task timed out after {spec.timeout_seconds:.2f} "
            "seconds"
        )
        log.warning("function %s: %s", spec.function_name, message)
        return Outcome(
            _error_payload("Sandbox.Timedout", message),
            True,
            worker.take_log(),
            spec.timeout_seconds * 1000,
            None,
            0,
            "Sandbox.Timedout",
        )

    def _died(self, worker: Worker, request_id: str, detail: str, begin: float) -> Outcome:
        spec = worker.spec
        worker.kill("died")
        if worker.killed_for == "out of memory":
            error_type = "Runtime.OutOfMemory"
            message = f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"
        else:
            error_type = "Runtime.ExitError"
            message = f"RequestId: {request_id} Error: Runtime exited with error: {detail}"
        log.warning("function %s: %s: %s", spec.function_name, error_type, message)
        return Outcome(
            _error_payload(error_type, message),
            True,
            worker.take_log(),
            (time.monotonic() - begin) * 1000,
            None,
            spec.memory_mb if error_type == "Runtime.OutOfMemory" else 0,
            error_type,
        )

    # acquiring workers

    def _acquire(self, spec: WorkerSpec) -> tuple[Worker, bool]:
        with self._lock:
            entry = self._functions.get(spec.function_name)
            if entry is None or entry.spec != spec:
                if entry is not None:
                    self._retire(entry)
                entry = self._functions[spec.function_name] = _FunctionWorkers(spec)
            limit = self.per_function
            if spec.reserved_concurrency is not None:
                if len(entry.busy) >= spec.reserved_concurrency:
                    raise ThrottledError(
                        f"Rate Exceeded: {spec.function_name} is at its reserved concurrency "
                        f"({spec.reserved_concurrency})"
                    )
                limit = min(limit, spec.reserved_concurrency)
            while True:
                while entry.idle:
                    worker = entry.idle.pop()
                    if worker.alive:
                        entry.busy.add(worker)
                        # A prewarmed worker's init may still run, or have failed.
                        return worker, worker.invocations == 0
                if len(entry.busy) < limit and self._make_room():
                    break
                self._lock.wait(timeout=1.0)
                if self._functions.get(spec.function_name) is not entry:
                    entry = self._functions.setdefault(spec.function_name, _FunctionWorkers(spec))
            worker = Worker(spec, self.endpoint)
            entry.busy.add(worker)
            return worker, True

    def _make_room(self) -> bool:
        """True if one more worker fits under `max_workers`, stopping the least recently used
        idle worker if needed (called with the lock held)."""
        live = sum(len(e.idle) + len(e.busy) for e in self._functions.values())
        if live < self.max_workers:
            return True
        idle = [w for e in self._functions.values() for w in e.idle]
        if not idle:
            return False
        oldest = min(idle, key=lambda w: w.last_used)
        for entry in self._functions.values():
            if oldest in entry.idle:
                entry.idle.remove(oldest)
        threading.Thread(target=oldest.kill, args=("evicted",), daemon=True).start()
        return True

    def _replace(self, worker: Worker) -> Worker:
        with self._lock:
            entry = self._functions[worker.spec.function_name]
            entry.busy.discard(worker)
            self._invoking.discard(worker)
            self._busy_memory.pop(worker, None)
            fresh = Worker(worker.spec, self.endpoint)
            entry.busy.add(fresh)
            self._invoking.add(fresh)
            self._busy_memory[fresh] = fresh.spec.memory_mb
            return fresh

    def _release(self, worker: Worker, reusable: bool) -> None:
        with self._lock:
            worker.last_used = time.monotonic()
            entry = self._functions.get(worker.spec.function_name)
            if entry is not None:
                entry.busy.discard(worker)
            keep = reusable and worker.alive and entry is not None and entry.spec == worker.spec
            if keep and entry is not None:
                entry.idle.append(worker)
            self._lock.notify_all()
        if not keep:
            worker.kill(worker.killed_for or "retired")

    def _retire(self, entry: _FunctionWorkers) -> None:
        for worker in entry.idle:
            threading.Thread(target=worker.kill, args=("updated",), daemon=True).start()
        entry.idle.clear()

    # memory

    def _ensure_monitor(self) -> None:
        with self._lock:
            if self._monitor is None or not self._monitor.is_alive():
                self._monitor = threading.Thread(
                    target=self._watch_memory, daemon=True, name="worker-memory"
                )
                self._monitor.start()

    def _watch_memory(self) -> None:
        while not self._stopped.wait(_MEMORY_POLL_SECONDS):
            with self._lock:
                busy = list(self._busy_memory.items())
            for worker, limit_mb in busy:
                if worker.alive and worker.peak_memory_mb() > limit_mb:
                    log.warning(
                        "function %s: memory over its %d MB: the worker is killed",
                        worker.spec.function_name,
                        limit_mb,
                    )
                    worker.killed_for = "out of memory"
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(worker.pid, signal.SIGKILL)


WORKERS = WorkerPool()


@contextlib.contextmanager
def concurrency(per_function: int) -> Iterator[None]:
    """While open, at most `per_function` workers of a function run at once."""
    saved = WORKERS.per_function
    WORKERS.per_function = per_function
    try:
        yield
    finally:
        WORKERS.per_function = saved
