"""`python -m core.cli` is the same as `protolab`."""

import sys

from core.cli import main

sys.exit(main())
