"""`python -m hil.cli ...` is `hil ...`."""

from hil.cli import entry

entry()
