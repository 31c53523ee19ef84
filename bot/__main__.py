"""`python -m bot`: the `articlebot` command without the console script installed."""

import sys

from bot.cli import main

sys.exit(main())
