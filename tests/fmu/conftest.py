"""The tests' FMUs, built from source once per session (tests/fmu/fmubuild.py)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import fmubuild as fb
import pytest

GOOD = fb.Spec()
BROKEN = {
    "no_input": replace(GOOD, inputs=()),
    "input_without_limits": replace(GOOD, inputs=(("F", 8, "N", None, 20.0),)),
    "wrong_guid": replace(GOOD, guid="{not-this-binary}"),
    "events": replace(GOOD, event_indicators=2),
}


@pytest.fixture(scope="session")
def fmus(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Paths of the session's FMUs: me, cs, two_inputs, and the broken ones."""
    folder = tmp_path_factory.mktemp("fmus")
    binary = fb.compile_binary(folder)
    paths = {
        "me": fb.pack(folder / "me.fmu", GOOD, binary),
        "cs": fb.pack(folder / "cs.fmu", replace(GOOD, kind="CoSimulation"), binary),
        "two_inputs": fb.pack(folder / "two_inputs.fmu",
                              replace(GOOD, inputs=(fb.FORCE, fb.TORQUE)), binary),
        "no_binary": fb.pack(folder / "no_binary.fmu", GOOD, None),
        "windows_only": fb.pack(folder / "windows_only.fmu", GOOD, binary, platform="win64",
                                suffix=".dll"),
    }
    paths.update({name: fb.pack(folder / f"{name}.fmu", spec, binary)
                  for name, spec in BROKEN.items()})
    not_a_zip = folder / "not_a_zip.fmu"
    not_a_zip.write_text("<fmiModelDescription/>\n")
    paths["not_a_zip"] = not_a_zip
    return SimpleNamespace(**paths)
