"""The `hil` command's package stays light: operator commands must start fast."""

from __future__ import annotations

import json
import subprocess
import sys

from hil.cli import history as history_cmd
from hil.cli import report as report_cmd
from hil.recording.export import FORMATS
from hil.reporting.history import DEFAULT_PATH


def _modules_after(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    return set(json.loads(out))


def test_importing_the_cli_pulls_in_no_numerics_plotting_or_config_schema() -> None:
    loaded = _modules_after("import hil.cli")
    for heavy in ("matplotlib", "numba", "numpy", "pydantic", "zmq", "scipy"):
        assert heavy not in loaded, f"import hil.cli imports {heavy}"


def test_building_the_estop_parser_and_its_module_stay_free_of_numerics() -> None:
    loaded = _modules_after("import hil.cli; hil.cli.build_parser(); import hil.link.operator")
    for heavy in ("matplotlib", "numba", "numpy", "pydantic"):
        assert heavy not in loaded, f"hil estop would import {heavy}"


def test_the_cli_constants_equal_the_ones_they_stand_for() -> None:
    assert report_cmd.EXPORT_FORMATS == FORMATS
    assert str(DEFAULT_PATH) == history_cmd.DEFAULT_DB
