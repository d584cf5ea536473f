"""The context object Lambda passes a handler, for a function of the dev stack."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int
    aws_request_id: str
    remaining_ms: int
    function_version: str = "$LATEST"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def lambda_context(
    function: str, *, memory_mb: int = 1024, request: int = 0, remaining_ms: int = 900_000
) -> LambdaContext:
    """The context of the dev stack's `function` (`ingest`, `predict`, ...) for request number
    `request`, with `remaining_ms` left before its timeout."""
    return LambdaContext(
        function_name=f"mlops-dev-{function}",
        memory_limit_in_mb=memory_mb,
        aws_request_id=f"5d7b4a1e-0000-4000-8000-{request:012d}",
        remaining_ms=remaining_ms,
    )
