"""Allow ``python -m condafix``."""

from condafix.cli import main

main()
