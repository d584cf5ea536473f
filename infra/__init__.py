"""Three programs: the CDK app (`infra.cdk`), the Docker-free local cloud that deploys its
assembly (`infra.local`) and the `mlops` command (`infra.cli`)."""
