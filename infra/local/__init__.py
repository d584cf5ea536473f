"""The Docker-free local cloud: the synthesized CDK template deployed into moto.

Emulated: S3 (EventBridge notifications on), DynamoDB, SNS (messages kept, readable in tests),
SQS, KMS, CloudWatch Logs, EventBridge rules (deliveries to Lambda and Step Functions run
asynchronously; schedules fire only on `fire_schedule`), Step Functions (moto runs the real
ASL, JSONata through jsonata-python) and Lambda (Python handlers run in this process with the
function's environment; one invocation at a time).
Not emulated: IAM (roles and policies are recorded, never enforced), KMS encryption, X-Ray,
Lambda layers (this interpreter's packages stand in), memory limits and concurrency, retries
of EventBridge targets, Step Functions execution logs, and anything needing Docker.
"""

from infra.local.cloud import LocalCloud

__all__ = ["LocalCloud"]
