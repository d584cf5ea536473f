"""The Docker-free local cloud: the synthesized CDK template deployed into moto.

Emulated: S3 (EventBridge notifications on), DynamoDB, SNS (messages kept, readable in tests),
SQS, KMS, CloudWatch Logs, EventBridge rules (deliveries to Lambda and Step Functions run
asynchronously; schedules fire only on `fire_schedule`), Step Functions (moto runs the real
ASL, JSONata through jsonata-python) and Lambda (Python handlers run in this process with the
function's environment; one invocation at a time; versions and aliases), API Gateway REST APIs
(served over HTTP by `infra.local.api_adapter` from the deployed resource tree: proxy events,
API keys of usage plans, request models), Firehose to S3 (records written on every put, under
prefixes with `!{timestamp:...}` expanded) and CloudWatch alarms (created, never evaluated).
Not emulated: IAM (roles and policies are recorded, never enforced; so is API Gateway's
IAM authorization), API Gateway throttling and access logs, Firehose buffering, KMS
encryption, X-Ray,
Lambda layers (this interpreter's packages stand in; a path under /opt in a function's
environment names the file in its layers' builds), memory limits and concurrency, retries
of EventBridge targets, Step Functions execution logs, and anything needing Docker.
"""

from infra.local.cloud import LocalCloud

__all__ = ["LocalCloud"]
