"""`python -m harness.nested ...`: what scripts/nested-engine runs."""

import sys

from harness.nested.cli import main

sys.exit(main())
