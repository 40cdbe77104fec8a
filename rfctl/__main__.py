import sys

from rfctl.cli import main

sys.exit(main())
