"""``python -m mgfm`` runs the command line."""

import sys

from mgfm.cli import main

sys.exit(main())
