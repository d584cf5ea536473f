"""The `mlops` command: `main` composes one module per command group (`python -m infra.cli`
runs it as the `mlops` script does)."""
