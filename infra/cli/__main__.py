"""`python -m infra.cli ...`: the `mlops` command."""

from infra.cli.main import main

main()
