"""The Docker-free local cloud: the synthesized CDK template deployed into moto.

Emulated: S3 (EventBridge notifications on), DynamoDB, SNS (messages kept, readable in tests),
SQS, KMS, CloudWatch Logs, EventBridge rules (deliveries to Lambda and Step Functions run
asynchronously; schedules fire only on `fire_schedule`), Step Functions (moto runs the real
ASL, JSONata through jsonata-python) and Lambda (in server mode every invocation runs in a
function worker: the function's runtime's Python with only its deployed code and packages, its
environment, memory, timeout and /tmp limits, several at once; see `infra.local.workers` and
docs/local-cloud.md; in-process mode runs handlers in this process, a debugging aid), API
Gateway REST APIs (served over HTTP by `infra.local.api_adapter` from the deployed resource
tree: proxy events, API keys of usage plans, request models), Firehose to S3 (records written
on every put, under prefixes with `!{timestamp:...}` expanded, its record processing applied),
CloudWatch Logs subscription filters (pattern and role applied) and CloudWatch alarms
(created, never evaluated). Not emulated: IAM (roles and policies are recorded, never
enforced; so is API Gateway's IAM authorization), API Gateway throttling and access logs,
Firehose buffering, KMS encryption, X-Ray, retries of EventBridge targets, Step Functions
execution logs, and anything needing Docker.
"""

from infra.local.cloud import LocalCloud

__all__ = ["LocalCloud"]
