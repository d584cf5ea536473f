"""The one pipeline config (`mlops.toml`), shared by the CDK app, the CLI and the functions.

Infra reads the TOML file; the deployed functions receive the validated model as compact JSON
in the `MLOPS_CONFIG_JSON` environment variable (Lambda caps all variables at 4 KB, so synth
checks the size). Every error names the file, the key and the problem.
"""
