"""`python -m exporter` runs the command-line entry point."""

import sys

from exporter.cli import main

sys.exit(main())
