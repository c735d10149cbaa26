"""Build the tests' FMUs from source, once per session (the `fmus` fixture, imported by each
test module: tests/fmu has no conftest.py of its own, so that `from conftest import` finds
the suite's):  tests/fmu/c/cartpole.c compiled with the system
compiler against the FMI 2 headers fmpy ships, and a modelDescription.xml written here, zipped
in the FMU layout (modelDescription.xml, binaries/linux64/cartpole.so, sources/)."""

from __future__ import annotations

import functools
import subprocess
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from xml.sax.saxutils import quoteattr

import fmpy
import pytest

SOURCE = Path(__file__).parent / "c" / "cartpole.c"
SOURCE3 = SOURCE.with_name("cartpole3.c")
MODEL_HEADER = SOURCE.with_name("cartpole_model.h")
IDENTIFIER = "cartpole"
IDENTIFIER3 = "cartpole3"
GUID = "{hil-cartpole-1}"
HEADERS = Path(fmpy.__file__).parent / "c-code"

STATES = (("x", "m"), ("theta", "rad"), ("x_dot", "m/s"), ("theta_dot", "rad/s"))
# name, value reference, unit, start: as tests/fmu/c/cartpole.c numbers them
PARAMETERS = (("cart_mass_kg", "kg", 1.0), ("pole_mass_kg", "kg", 0.1),
              ("pole_length_m", "m", 0.5), ("pole_com_m", "m", 0.25),
              ("pole_inertia_kgm2", "kg.m2", 0.1 * 0.5**2 / 12.0),
              ("gravity_mps2", "m/s2", 9.81), ("cart_friction_nspm", "N.s/m", 0.1),
              ("joint_friction_nmsprad", "N.m.s/rad", 0.001), ("x0", "m", 0.0),
              ("theta0", "rad", 0.0), ("x_dot0", "m/s", 0.0), ("theta_dot0", "rad/s", 0.0),
              ("fail_at_s", "s", -1.0), ("event_at_s", "s", -1.0))
FORCE = ("F", 8, "N", -20.0, 20.0)
TORQUE = ("tau", 9, "N.m", -2.0, 2.0)


@dataclass
class Spec:
    """What a modelDescription.xml says (variants make the broken FMUs)."""

    kind: str = "ModelExchange"  # or "CoSimulation"
    inputs: tuple[tuple[str, int, str, float | None, float | None], ...] = (FORCE,)
    guid: str = GUID
    fmi_version: str = "2.0"
    event_indicators: int = 0
    sources: bool = False  # list sources/cartpole.c (packed with the sources)
    source_text: str | None = None  # what sources/cartpole.c holds (None: the real one)
    extra: list[str] = field(default_factory=list)


def _variable(name: str, vr: int, causality: str, variability: str, real: str,
              initial: str | None = None) -> str:
    init = f' initial="{initial}"' if initial else ""
    return (f'    <ScalarVariable name={quoteattr(name)} valueReference="{vr}" '
            f'causality="{causality}" variability="{variability}"{init}>{real}'
            f'</ScalarVariable>')


def _limits(low: float | None, high: float | None) -> str:
    return "".join(f' {k}="{v}"' for k, v in (("min", low), ("max", high)) if v is not None)


def model_description(spec: Spec) -> str:
    """The XML for `spec`: states (outputs) 1-4, derivatives 5-8, inputs, energy, params."""
    rows = [_variable(n, i, "output", "continuous", f'<Real unit="{u}"/>')
            for i, (n, u) in enumerate(STATES)]
    rows += [_variable(f"der({n})", 4 + i, "local", "continuous",
                       f'<Real derivative="{i + 1}"/>') for i, (n, _) in enumerate(STATES)]
    rows += [_variable(n, vr, "input", "continuous",
                       f'<Real unit="{u}" start="0"{_limits(lo, hi)}/>')
             for n, vr, u, lo, hi in spec.inputs]
    energy = len(rows) + 1
    rows.append(_variable("energy_J", 10, "output", "continuous", '<Real unit="J"/>'))
    rows += [_variable(n, 20 + i, "parameter", "fixed", f'<Real unit="{u}" start="{v!r}"/>',
                       "exact") for i, (n, u, v) in enumerate(PARAMETERS)]
    outputs = "".join(f'<Unknown index="{i}"/>' for i in (1, 2, 3, 4, energy))
    derivatives = "".join(f'<Unknown index="{i}"/>' for i in (5, 6, 7, 8))
    interface = (f'<{spec.kind} modelIdentifier="{IDENTIFIER}"'
                 + (' canHandleVariableCommunicationStepSize="true"'
                    if spec.kind == "CoSimulation" else "")
                 + (f'><SourceFiles><File name="{SOURCE.name}"/></SourceFiles></{spec.kind}>'
                    if spec.sources else "/>"))
    units = sorted({u for _, u in STATES} | {u for *_, u, _ in PARAMETERS}
                   | {i[2] for i in spec.inputs} | {"J"})
    unit_rows = "".join(f"<Unit name={quoteattr(u)}/>" for u in units)
    return "\n".join([
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<fmiModelDescription fmiVersion="{spec.fmi_version}" modelName="cartpole" '
        f'guid="{spec.guid}" numberOfEventIndicators="{spec.event_indicators}" '
        f'variableNamingConvention="flat">',
        f"  {interface}", f"  <UnitDefinitions>{unit_rows}</UnitDefinitions>",
        "  <ModelVariables>", *rows, "  </ModelVariables>",
        f"  <ModelStructure><Outputs>{outputs}</Outputs>"
        f"<Derivatives>{derivatives}</Derivatives></ModelStructure>",
        *spec.extra, "</fmiModelDescription>", ""])


def model_description3(spec: Spec) -> str:
    """The FMI 3.0 XML for `spec` (value references as in model_description)."""
    def float64(name: str, vr: int, causality: str, extra: str,
                variability: str = "continuous") -> str:
        return (f'    <Float64 name={quoteattr(name)} valueReference="{vr}" '
                f'causality="{causality}" variability="{variability}"{extra}/>')

    rows = [float64(n, i, "output", f' unit="{u}"') for i, (n, u) in enumerate(STATES)]
    rows.append(float64("time", 11, "independent", ' unit="s"'))
    rows += [float64(f"der({n})", 4 + i, "local", f' derivative="{i}"')
             for i, (n, _) in enumerate(STATES)]
    rows += [float64(n, vr, "input", f' unit="{u}" start="0"{_limits(lo, hi)}')
             for n, vr, u, lo, hi in spec.inputs]
    rows.append(float64("energy_J", 10, "output", ' unit="J"'))
    rows += [float64(n, 20 + i, "parameter", f' unit="{u}" start="{v!r}" initial="exact"',
                     "fixed") for i, (n, u, v) in enumerate(PARAMETERS)]
    units = sorted({u for _, u in STATES} | {u for *_, u, _ in PARAMETERS}
                   | {i[2] for i in spec.inputs} | {"J"})
    structure = "".join(f'<Output valueReference="{vr}"/>' for vr in (0, 1, 2, 3, 10)) + \
        "".join(f'<ContinuousStateDerivative valueReference="{vr}"/>' for vr in (4, 5, 6, 7)) \
        + "".join('<EventIndicator valueReference="0"/>' for _ in range(spec.event_indicators))
    return "\n".join([
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<fmiModelDescription fmiVersion="3.0" modelName="cartpole" '
        f'instantiationToken="{spec.guid}">',
        f'  <{spec.kind} modelIdentifier="{IDENTIFIER3}"'
        + (' canHandleVariableCommunicationStepSize="true"' if spec.kind == "CoSimulation"
           else ' needsCompletedIntegratorStep="true"') + "/>",
        "  <UnitDefinitions>" + "".join(f"<Unit name={quoteattr(u)}/>" for u in units)
        + "</UnitDefinitions>",
        "  <ModelVariables>", *rows, "  </ModelVariables>",
        f"  <ModelStructure>{structure}</ModelStructure>", "</fmiModelDescription>", ""])


def compile_binary(out_dir: Path, fmi_version: str = "2.0") -> Path:
    """tests/fmu/c/cartpole.c (FMI 2) or cartpole3.c (FMI 3, with stubs for the FMI 3
    functions it leaves out, which fmpy looks up) as a shared library in `out_dir`."""
    import re

    import fmpy.fmi3

    sources = [SOURCE]
    binary = out_dir / f"{IDENTIFIER}.so"
    if fmi_version == "3.0":
        binary = out_dir / f"{IDENTIFIER3}.so"
        defined = set(re.findall(r"\b(fmi3\w+)\(", SOURCE3.read_text()))
        wanted = {n for c in (fmpy.fmi3.FMU3Model, fmpy.fmi3.FMU3Slave) for n in dir(c)
                  if n.startswith("fmi3")}
        stubs = out_dir / "fmi3stubs.c"
        stubs.write_text("".join(f"int {n}(void) {{ return 3; }}\n"
                                 for n in sorted(wanted - defined)))
        sources = [SOURCE3, stubs]
    subprocess.run(["gcc", "-std=c99", "-O2", "-shared", "-fPIC", "-Wall", "-Werror",
                    f"-I{HEADERS}", *map(str, sources), "-o", str(binary), "-lm"], check=True)
    return binary


def pack(path: Path, spec: Spec, binary: Path | None, platform: str = "linux64",
         suffix: str = ".so") -> Path:
    """An FMU at `path`: the modelDescription of `spec` and `binary` for `platform` (None:
    no binary at all; none of them has sources)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("modelDescription.xml", model_description3(spec)
                         if spec.fmi_version == "3.0" else model_description(spec))
        if binary is not None:
            archive.write(binary, f"binaries/{platform}/{binary.stem}{suffix}")
        if spec.sources:
            archive.writestr(f"sources/{SOURCE.name}", SOURCE.read_text()
                             if spec.source_text is None else spec.source_text)
            archive.write(MODEL_HEADER, f"sources/{MODEL_HEADER.name}")
    return path


GOOD = Spec()
BROKEN = {
    "no_input": replace(GOOD, inputs=()),
    "input_without_limits": replace(GOOD, inputs=(("F", 8, "N", None, 20.0),)),
    "wrong_guid": replace(GOOD, guid="{not-this-binary}"),
    "events": replace(GOOD, event_indicators=2),
    "sources_that_do_not_build": replace(GOOD, sources=True,
                                         source_text="this is not C;\n"),
}


@functools.cache
def build_all(folder: Path) -> SimpleNamespace:
    """Every FMU of the tests in `folder`: me, cs, two_inputs, me3 and cs3 (FMI 3.0), and
    the broken ones."""
    folder.mkdir(parents=True, exist_ok=True)
    binary = compile_binary(folder)
    paths = {
        "me": pack(folder / "me.fmu", GOOD, binary),
        "cs": pack(folder / "cs.fmu", replace(GOOD, kind="CoSimulation"), binary),
        "two_inputs": pack(folder / "two_inputs.fmu", replace(GOOD, inputs=(FORCE, TORQUE)),
                           binary),
        "no_binary": pack(folder / "no_binary.fmu", GOOD, None),
        "sources_only": pack(folder / "sources_only.fmu", replace(GOOD, sources=True), None),
        "windows_only": pack(folder / "windows_only.fmu", GOOD, binary, platform="win64",
                             suffix=".dll"),
    }
    paths.update({name: pack(folder / f"{name}.fmu", spec, None if spec.sources else binary)
                  for name, spec in BROKEN.items()})
    binary3 = compile_binary(folder, "3.0")
    fmi3 = replace(GOOD, fmi_version="3.0")
    paths.update({name: pack(folder / f"{name}.fmu", spec, binary3, platform="x86_64-linux")
                  for name, spec in {
                      "me3": fmi3, "cs3": replace(fmi3, kind="CoSimulation"),
                      "wrong_token3": replace(fmi3, guid="{not-this-binary}"),
                      "events3": replace(fmi3, event_indicators=1)}.items()})
    not_a_zip = folder / "not_a_zip.fmu"
    not_a_zip.write_text("<fmiModelDescription/>\n")
    paths["not_a_zip"] = not_a_zip
    return SimpleNamespace(**paths)


@pytest.fixture(scope="session", name="fmus")
def fmus_fixture(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Paths of the session's FMUs (built on first use, in the session's temporary folder)."""
    return build_all(tmp_path_factory.getbasetemp() / "fmus")


def build_example(folder: Path) -> Path:
    """The example FMU configs/fmu-cartpole.yaml runs: the cart-pole, model exchange."""
    folder.mkdir(parents=True, exist_ok=True)
    return pack(folder / "cartpole.fmu", GOOD, compile_binary(folder))


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python tests/fmu/fmubuild.py FOLDER  (writes FOLDER/cartpole.fmu)")
    print(build_example(Path(sys.argv[1])))
