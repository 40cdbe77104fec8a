"""``python -m rfctl.cli``."""

import sys

from . import main

sys.exit(main())
