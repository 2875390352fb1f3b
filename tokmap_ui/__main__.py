"""``python -m tokmap_ui`` runs the command line."""

import sys

from tokmap_ui.cli import main

sys.exit(main())
