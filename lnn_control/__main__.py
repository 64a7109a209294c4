"""``python -m lnn_control`` is the same as the ``lnn-control`` command."""

import sys

from lnn_control.cli import main

sys.exit(main())
