"""`python -m harness`, which is how `accelerate launch -m harness eval ...` runs the harness."""

import sys

from harness.cli import main

sys.exit(main())
