"""Infrastructure as code (CDK app), the Docker-free local cloud and the `mlops` command."""
