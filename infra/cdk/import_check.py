"""The import check: a deployed function's handler imported as Lambda's init does, on this
machine (`function_env` rebuilds the function's environment).

`check_import` imports a function's handler in a fresh interpreter of its runtime's version,
isolated (`-I -S`: no site-packages, no PYTHON* variables, no bytecode written), with
`sys.path` exactly its code and packages, and reports what Lambda's init would:
`Runtime.ImportModuleError`, `Runtime.HandlerNotFound`, or success. The same process proves
the dev virtualenv is absent: `import pytest` and `import moto` must fail there.

`python -m infra.cdk.import_check [cdk.out] [stack]` prints the check for every function.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from infra.cdk.config import REPO_ROOT
from infra.cdk.function_env import (
    DeployedFunction,
    FunctionEnvError,
    HostEnvironment,
    deployed_functions,
    host_environment,
)
from infra.cdk.layers import BUILD_ROOT

DEV_ONLY_MODULES = ("pytest", "moto")
"""Installed in the dev virtualenv, never deployed: importable in a function's process only
if the dev virtualenv leaked into it."""
_IMPORT_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class ImportCheck:
    """The outcome of importing one function's handler as Lambda's init does."""

    function: DeployedFunction
    python_version: str
    error_type: str | None = None
    """`Runtime.ImportModuleError`, `Runtime.HandlerNotFound`, ... ; None: it imported."""
    message: str = ""
    leaked: tuple[str, ...] = ()
    """Dev-only modules that imported in the function's process (must be none)."""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error_type is None and not self.leaked

    def describe(self) -> str:
        head = f"{self.function.logical_id} ({self.function.kind}, {self.function.handler})"
        if self.leaked:
            return (
                f"{head}: {', '.join(self.leaked)} imported in the function's process: the "
                "dev virtualenv leaked into it"
            )
        if self.error_type is not None:
            return f"{head}: {self.error_type}: {self.message}"
        return f"{head}: imports under Python {self.python_version} in {self.seconds:.1f} s"


_IMPORT_SCRIPT = """
import importlib, json, sys, traceback
paths, module_name, attribute, dev_only = json.loads(sys.argv[1])
sys.path[:0] = paths
leaked = []
for name in dev_only:
    try:
        importlib.import_module(name)
    except ImportError:
        continue
    leaked.append(name)
result = {"leaked": leaked, "error_type": None, "message": "", "sys_path": sys.path}
try:
    module = importlib.import_module(module_name)
except Exception as exc:
    result["error_type"] = "Runtime.ImportModuleError"
    result["message"] = f"Unable to import module '{module_name}': {exc}"
    result["traceback"] = traceback.format_exc(limit=-8)
else:
    if not callable(getattr(module, attribute, None)):
        result["error_type"] = "Runtime.HandlerNotFound"
        result["message"] = f"Handler '{attribute}' missing on module '{module_name}'"
print("\\n" + json.dumps(result))
"""


def lambda_environment(
    function: DeployedFunction, environment: HostEnvironment, region: str = "us-east-1"
) -> dict[str, str]:
    """The variables a function's process starts with: Lambda's reserved ones and the
    template's literal ones (paths under /opt mapped into the layers' builds)."""
    variables = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{function.python_version}",
        "LAMBDA_TASK_ROOT": str(environment.task_root),
        "_HANDLER": function.handler,
    }
    variables.update(
        {key: environment.in_layers(value) for key, value in function.environment.items()}
    )
    return variables


def check_import(function: DeployedFunction, build_root: Path = BUILD_ROOT) -> ImportCheck:
    """Import `function`'s handler as Lambda's init does, in a fresh isolated interpreter of
    its runtime's version with only its deployment on `sys.path`."""
    environment = host_environment(function, build_root)
    module_name, _, attribute = function.handler.rpartition(".")
    argument = json.dumps(
        [
            [str(path) for path in environment.sys_path],
            module_name,
            attribute,
            list(DEV_ONLY_MODULES),
        ]
    )
    started = time.monotonic()
    try:
        result = subprocess.run(
            [environment.python.executable, "-I", "-S", "-B", "-c", _IMPORT_SCRIPT, argument],
            capture_output=True,
            text=True,
            env=lambda_environment(function, environment),
            cwd=environment.task_root,
            timeout=_IMPORT_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ImportCheck(
            function,
            environment.python.version,
            "Runtime.InitTimeout",
            f"importing the handler took over {_IMPORT_TIMEOUT_SECONDS} s",
        )
    seconds = time.monotonic() - started
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-10:])
        return ImportCheck(
            function,
            environment.python.version,
            "Runtime.ExitError",
            f"the interpreter exited with {result.returncode}: {tail}",
            seconds=seconds,
        )
    outcome = json.loads(lines[-1])
    return ImportCheck(
        function,
        environment.python.version,
        outcome["error_type"],
        outcome["message"],
        tuple(outcome["leaked"]),
        seconds,
    )


def check_imports(
    functions: Sequence[DeployedFunction], build_root: Path = BUILD_ROOT
) -> list[ImportCheck]:
    """`check_import` for every function, as many at once as this machine has cores (the
    environments they share are built first, once)."""
    for function in functions:
        host_environment(function, build_root)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return list(pool.map(lambda f: check_import(f, build_root), functions))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    cdk_out = Path(args[0]) if args else REPO_ROOT / "cdk.out"
    stack = args[1] if len(args) > 1 else None
    try:
        checks = check_imports(deployed_functions(cdk_out, stack))
    except FunctionEnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for check in checks:
        print(("ok    " if check.passed else "FAIL  ") + check.describe())
    return 0 if all(check.passed for check in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
