"""`python -m exporter` runs the command-line entry point (exporter.cli), whose I/O it is;
nothing of its own."""

import sys

from exporter.cli import main

sys.exit(main())
