"""Allow ``python -m condafix``."""

from condafix.cli.start import main

main()
