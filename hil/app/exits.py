"""Exit statuses shared by every hil process and command (standard library only)."""

EXIT_OK = 0  # ran to the end; for `hil run`, the verdict is PASS
EXIT_FAULT = 1  # ended by a fault, or a gate failed
EXIT_USAGE = 2  # bad usage or config
EXIT_UNREACHABLE = 3  # the peer is unreachable or silent
EXIT_REFUSED = 4  # the peer refused us
