"""`python -m bot` is the same entry point as the `hh-opsbot` console script."""

import sys

from bot.cli import main

sys.exit(main())
