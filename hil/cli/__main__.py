"""`python -m hil.cli ...` is `hil ...`."""

import sys

from hil.cli import main

sys.exit(main())
