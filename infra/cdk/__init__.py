"""The CDK app (`python -m infra.cdk.app`): stacks, constructs, the serving layer's build, the
template checks, and the deploy-time tools around it (bootstrap, predeploy, function_env)."""
