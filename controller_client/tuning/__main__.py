"""`python -m controller_client.tuning ...` is `hil tune ...`."""

import sys

from controller_client.tuning.command import main

sys.exit(main())
