"""Allow ``python -m condafix``."""

from condafix.cli.app import main

main()
