"""Run configuration: YAML files validated at start-up with pydantic.

A wrong key, type or value raises `ConfigError` whose message names the file, the key path
and what is allowed; the command-line tools turn it into exit status 2. Every number has a
range (a `Range` in its annotation, hil/config_ranges.py; docs/safety.md lists them): a value
outside it, or not finite, is refused naming the key, the value and the range. The plant's and the
controller's own settings (model parameters, gains) are validated again by the components
that own them, with the same kind of message.
"""

from __future__ import annotations

import ipaddress
import math
import shlex
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hil.config_ranges import OUT_OF_RANGE, Range, show_number

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5600"


class ConfigError(Exception):
    """The configuration is invalid; the message says where and what is allowed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The loop keeps this share of a period free before the plant's next tick
# (controller_client/loop.py LoopSettings.guard), so controller.phase_offset + it must be < 1.
CONTROLLER_GUARD = 0.15

# Ranges shared by several keys (one per kind of number); the others are written at their key.
# A key's range is its `Range` annotation (hil/config_ranges.py); docs/safety.md lists them all.
RATIO = Range(0, 1)
STATE_ENTRY = Range(-1_000, 1_000, "in the state's own units: m, rad, m/s, rad/s")
GAIN = Range(-1e6, 1e6, "the law checks its own gains; this bounds their size")
TRACK_M = Range(1e-3, 1_000)
SLEW_PER_S = Range(1e-3, 1e8, "input units per second; 1e8 is beyond any actuator")
LATENCY_MS = Range(0, 1_000)
SEED = Range(0, 2**64 - 1, "a u64, as the rig firmware reads it")
U32 = Range(0, 0xFFFFFFFF, "a u32 of the rig protocol")
CPU = Range(0, 1023, "Linux's CPU_SETSIZE is 1024")
ANGLE_LIMIT = Range(1e-3, 60, "about ten turns")
NOISE_STD = Range(0, 1_000, "in the state's own units")
STABILITY_BOUND = Range(-1e9, 1e9, "a bound on a report figure: a ratio, a condition number")


class RunConfig(_Strict):
    mode: Literal["realtime", "lockstep"] = "realtime"
    rate_hz: Annotated[float, Range(1, 20_000)] = 1000.0
    duration_s: Annotated[float, Range(1e-3, 86_400, "up to a day")] = 5.0
    # Lead time between the handshake and the first plant tick, for the controller to settle.
    start_delay_ms: Annotated[float, Range(0, 5_000)] = 50.0
    # Lockstep only: busy-poll this long for each answer before sleeping (both processes).
    # Spinning shortens the round trip on an idle machine and lengthens it on a busy one (the
    # spinner starves its peer and ZeroMQ's I/O threads): off by default, for a dedicated,
    # idle machine (docs/performance.md).
    lockstep_spin_us: Annotated[float, Range(0, 100_000)] = 0.0
    # Data plane: zmq (any host), or shm: states and controls through shared memory on one
    # host, ZeroMQ keeping the control plane (hil/link/dataplane.py; docs/shm.md).
    transport: Literal["zmq", "shm"] = "zmq"
    # shm only: busy-poll this long before sleeping on the futex doorbell, for each answer in
    # lockstep and before each deadline in realtime (both processes; in realtime capped to
    # leave each loop idle time, hil/link/dataplane.py MAX_LOOP_SHARE). The default covers a
    # virtual machine's wake-up latency from a sleep (p99 60-100 us), so the loop wakes from
    # its spin, not from the futex, at its deadline (docs/shm.md, docs/performance.md).
    shm_spin_us: Annotated[float, Range(0, 10_000)] = 120.0


class PlantConfig(_Strict):
    # sim: a numba model; serial: a rig on `serial.port` (plant_server/backends/serial.py).
    backend: Literal["sim", "serial"] = "sim"
    # A built-in model (dip, cartpole, rotary), an entry point of group hil.plants, or a class
    # of your own as "module.path:Class" (docs/extending.md); checked when the plant loads it.
    model: Annotated[str, Field(min_length=1)] = "dip"
    params: dict[str, Any] = Field(default_factory=dict)
    # model `fmu`: the .fmu file (relative to the config file's folder; docs/fmu.md), and for
    # a co-simulation FMU the outputs read as the state, in order (null: all, as declared).
    fmu: Annotated[str, Field(min_length=1)] | None = None
    fmu_outputs: list[Annotated[str, Field(min_length=1)]] | None = None
    substeps: Annotated[int, Range(1, 1000)] = 4
    # One number per state, or the name of a preset of the model (`hanging`, `upright`: the
    # built-in cartpole and rotary declare them), resolved here to its numbers.
    initial_state: list[Annotated[float, STATE_ENTRY]] = Field(
        default_factory=lambda: [0.0, 0.1, -0.05, 0.0, 0.0, 0.0])
    endpoint: str = DEFAULT_ENDPOINT
    watchdog_timeout_ms: Annotated[float, Range(1, 10_000)] = 20.0
    # In lockstep nothing is real time: the watchdog only catches a dead controller, and
    # must not trip on a process the OS descheduled for a while on a loaded machine.
    lockstep_watchdog_timeout_ms: Annotated[float, Range(1, 600_000, "up to 10 min")] = 2000.0
    # How long a plant with no controller waits before giving up (s).
    attach_timeout_s: Annotated[float, Range(0.01, 86_400, "up to a day")] = 30.0
    # The controller's start-up: from the run clock's start to its first valid control (its
    # clock sync across a slow link, its warm-up); the watchdog's own timeout applies after.
    first_control_timeout_ms: Annotated[float, Range(1, 600_000, "up to 10 min")] = 5000.0
    # Binding beyond loopback without `security.curve` lets anyone on the network drive the
    # actuator, so it must be said explicitly.
    allow_unauthenticated_network: bool = False

    @field_validator("initial_state", mode="before")
    @classmethod
    def _preset(cls, v: Any, info: ValidationInfo) -> Any:
        if not isinstance(v, str):
            return v
        return preset_initial_state(info.data.get("model"), v)

    @field_validator("initial_state")
    @classmethod
    def _some_state(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("must be a non-empty list of numbers, one per state")
        return v

    @field_validator("endpoint")
    @classmethod
    def _endpoint_form(cls, v: str) -> str:
        return _check_endpoint(v)


def preset_initial_state(model: Any, preset: str) -> list[float]:
    """The state the preset `preset` of plant model `model` names (`plant.initial_state:
    hanging`): a built-in model's, or an installed or importable one's `initial_states`;
    ValueError naming the presets the model has."""
    from hil.dynamics import MODELS, PluginError
    from hil.dynamics.base import preset_state
    from hil.dynamics.plugins import load_object

    if model is None:
        raise ValueError("plant.model must be valid to resolve a preset")
    if model == "fmu":
        raise ValueError("an FMU has no initial-state presets; give one number per state")
    found: Any = MODELS.get(model)
    if found is None:
        try:
            found = load_object(model, key="plant.model", group="hil.plants", search_path=())
        except PluginError as exc:
            raise ValueError(f"{preset!r} is a preset name, and plant.model {model!r} could "
                             f"not be loaded to find its presets ({exc}); give one number "
                             f"per state") from None
    return preset_state(found, preset)


class ControllerConfig(_Strict):
    # A built-in law, an entry point of group hil.controllers, or "module.path:Class"
    # (docs/extending.md); checked when the controller loads it.
    name: Annotated[str, Field(min_length=1)] = "classical_smc"
    gains: list[Annotated[float, GAIN]] | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    endpoint: str = DEFAULT_ENDPOINT
    # Controller deadline = plant tick + phase_offset * period (state has arrived by then).
    phase_offset: Annotated[float, Range(
        0, 1 - CONTROLLER_GUARD, f"phase_offset + the controller's guard {CONTROLLER_GUARD}, "
        "the share of a period it keeps free before the plant's next tick, must be < 1",
        high_open=True)] = 0.3
    # Spin (busy-wait) for the last stretch before each deadline, in microseconds.
    spin_us: Annotated[float, Range(0, 10_000)] = 150.0
    connect_timeout_s: Annotated[float, Range(0.01, 3_600)] = 5.0
    plant_timeout_ms: Annotated[float, Range(1, 600_000, "up to 10 min")] = 500.0
    # In lockstep nothing is real time: the plant's silence ends the run only past this, as
    # the plant's own lockstep watchdog waits for the controller (a plant the OS descheduled
    # for a while on a loaded machine is not a dead one).
    lockstep_plant_timeout_ms: Annotated[float, Range(1, 600_000, "up to 10 min")] = 2000.0
    # Attaching to a plant latched in its safe state, send `clear` at once (restart recovery).
    clear_on_attach: bool = False
    # A controller program of your own that `hil run` starts in place of hil-controller (a C
    # controller on clients/c's libhil): a command line, split as a shell would (shlex) but not
    # run by one; it gets the endpoint, mode and run folder in HIL_* environment variables
    # (clients/c/README.md). None: hil-controller runs the law named above.
    command: str | None = None

    @field_validator("endpoint")
    @classmethod
    def _endpoint_form(cls, v: str) -> str:
        return _check_endpoint(v)

    @field_validator("command")
    @classmethod
    def _command_form(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            words = shlex.split(v)
        except ValueError as exc:
            raise ValueError(f"{v!r} is not a command line ({exc}): quote it as a shell "
                             "would") from None
        if not words:
            raise ValueError("an empty command: give the controller program and its "
                             "arguments, or null to run hil-controller")
        return v


# The at_target gate's tolerance per unit of a regulated state (hil/reporting/target.py) when
# `gates.target_tolerance` does not name the unit. "rad" is not here: an angle's tolerance is
# `gates.upright_tolerance_rad`.
DEFAULT_TARGET_TOLERANCE: dict[str, float] = {"m": 0.05, "m/s": 0.05, "rad/s": 0.1, "deg": 1.0}
TOLERANCE = Range(0, 1e6, "in the state's own unit; 0 would fail every run", low_open=True)


class GatesConfig(_Strict):
    # The at_target gate (hil/reporting/target.py, README "Verdict and gates"): each regulated
    # state must end within its tolerance of its target. An angle (rad) within this:
    upright_tolerance_rad: Annotated[float, Range(
        1e-6, 3.14, "half a turn: any wider takes every angle as upright")] = 0.02
    # A state in another unit: by unit, over DEFAULT_TARGET_TOLERANCE; else the "other".
    target_tolerance: dict[str, Annotated[float, TOLERANCE]] = Field(default_factory=dict)
    target_tolerance_other: Annotated[float, TOLERANCE] = 0.05
    # By state name, over its unit's tolerance (a name the plant does not have fails the gate).
    state_tolerance: dict[str, Annotated[float, TOLERANCE]] = Field(default_factory=dict)
    max_miss_ratio: Annotated[float, RATIO] = 0.01
    # Scoring (hil/reporting/scoring.py). None: 85% of the plant period.
    max_round_trip_p99_us: Annotated[float, Range(1, 10_000_000, "up to 10 s")] | None = None
    max_safety_trips: Annotated[int, Range(0, 1_000_000)] = 0
    max_dropped_records: Annotated[int, Range(
        0, 2_000_000_000, "a day of rows at 20 kHz is 1.7e9")] = 0
    # Stability gates: dotted path into the report's `stability` section -> bound.
    # Defaults (hil/runtime/stability.py): at most 5% of steps at the force limit; V = sigma^2/2
    # must decrease in at least 60% of the steps off the sliding surface (good runs: 0.79-1.0).
    stability_max: dict[str, Annotated[float, STABILITY_BOUND]] = Field(
        default_factory=lambda: {"actuator.saturation_duty": 0.05})
    stability_min: dict[str, Annotated[float, STABILITY_BOUND]] = Field(
        default_factory=lambda: {"lyapunov.decrease_ratio": 0.6})
    # A control step changing the force by more than this rate counts as a slew-limit hit.
    slew_limit_n_per_s: Annotated[float, SLEW_PER_S] = 50_000.0
    # Experiment metrics (report.json experiment.metrics) -> a bound on |metric|, e.g.
    # {x.overshoot_pct: 20}; each is a critical gate `metrics.<name>` (docs/experiments.md).
    metrics: dict[str, Annotated[float, Range(
        0, 1e9, "a bound on an experiment metric's magnitude, in its unit")]] = Field(
        default_factory=dict)
    # Per gate name, overriding scoring.DEFAULT_WEIGHTS / DEFAULT_CRITICAL.
    weights: dict[str, Annotated[float, Range(0, 1_000)]] = Field(
        default_factory=dict)
    critical: dict[str, bool] = Field(default_factory=dict)
    # Below this score (0-100) the run fails even when every critical gate passed.
    pass_score: Annotated[float, Range(0, 100)] = 80.0

    @field_validator("target_tolerance")
    @classmethod
    def _no_rad_and_no_empty_unit(cls, v: dict[str, float]) -> dict[str, float]:
        if "rad" in v:
            raise ValueError("has a 'rad' entry: an angle's tolerance is "
                             "gates.upright_tolerance_rad; set that instead")
        if "" in v:
            raise ValueError("has an entry for an empty unit: a state without a unit takes "
                             "gates.target_tolerance_other; set that instead")
        return v


class RecordConfig(_Strict):
    """Run recording (hil/recording/recorder.py, docs/recording.md), HTML report, run history."""

    enabled: bool = True
    queue_rows: Annotated[int, Range(1, 10_000_000)] = 65_536
    flush_interval_ms: Annotated[float, Range(1, 100)] = 50.0
    # 0: fsync only at close.
    fsync_interval_s: Annotated[float, Range(0, 3_600)] = 1.0
    html: bool = True
    # SQLite run history appended by `hil run`; null: none.
    history_db: str | None = "runs/history.db"


class RealtimeConfig(_Strict):
    """Latency hygiene, on by default (SCHED_FIFO in realtime runs only); each request is
    warned about once when the OS refuses it (an unprivileged user) and the run goes on. At
    1 kHz here SCHED_FIFO was the difference between 0-2 and 10-37 deadline misses in
    5000-8000."""

    plant_cpu: Annotated[int, CPU] | None = None
    controller_cpu: Annotated[int, CPU] | None = None
    sched_fifo: bool = True
    sched_priority: Annotated[int, Range(1, 99, "SCHED_FIFO's priorities")] = 50
    lock_memory: bool = True


class DeadlineGatesConfig(_Strict):
    """hil/runtime/deadline_gates.py: policy `warn` logs (at most 1/s), `safe_stop` trips."""

    window_ms: Annotated[float, Range(
        1, 60_000, "one entry per tick: up to a minute, 1.2e6 ticks at 20 kHz")] = 1000.0
    max_miss_ratio: Annotated[float, RATIO] = 0.2
    miss_ratio_policy: Literal["warn", "safe_stop"] = "warn"
    max_consecutive_misses: Annotated[int, Range(1, 1_000_000)] = 20
    consecutive_policy: Literal["warn", "safe_stop"] = "warn"


class AngleLimitsConfig(_Strict):
    """Link angle limit (rad) per run mode; null: off."""

    realtime: Annotated[float, ANGLE_LIMIT] | None = 1.0
    lockstep: Annotated[float, ANGLE_LIMIT] | None = 1.0


class SafetyConfig(_Strict):
    """Plant safety gates (plant_server/safety.py). The watchdog's timeout is
    `plant.watchdog_timeout_ms`. A null limit is off."""

    track_limit_m: Annotated[float, TRACK_M] | None = 2.0
    angle_limit_rad: AngleLimitsConfig = Field(default_factory=AngleLimitsConfig)
    # A finite force above this many times the plant's max force is rejected, not saturated.
    sanity_force_factor: Annotated[float, Range(1, 1_000)] = 10.0
    slew_limit_n_per_s: Annotated[float, SLEW_PER_S] | None = None
    # The safe output: zero force, or for the simulated plant also a cart brake.
    braking: Literal["none", "cart_brake"] = "none"
    brake_n_per_mps: Annotated[float, Range(1e-3, 10_000)] = 50.0
    deadline: DeadlineGatesConfig = Field(default_factory=DeadlineGatesConfig)


class FaultsConfig(_Strict):
    """Fault injection at the simulated plant (plant_server/faults.py), seeded."""

    seed: Annotated[int, SEED] = 0
    state_latency_ms: Annotated[float, LATENCY_MS] = 0.0
    control_latency_ms: Annotated[float, LATENCY_MS] = 0.0
    # Each delayed message waits a further uniform 0..jitter_ms.
    jitter_ms: Annotated[float, LATENCY_MS] = 0.0
    # Probability that a state, and that a control, is lost.
    drop_rate: Annotated[float, Range(0, 1, "1 would lose every message", high_open=True)] = 0.0
    # Standard deviation of the noise added to each published state entry (its own unit).
    sensor_noise_std: Annotated[float, NOISE_STD] | list[Annotated[float, NOISE_STD]] = 0.0


class SerialConfig(_Strict):
    """The serial link to a rig, for plant.backend `serial` (firmware_protocol/PROTOCOL.md)."""

    port: str = "/dev/ttyUSB0"
    baud: Annotated[int, Range(300, 12_000_000)] = 460_800
    # HELLO is repeated every 200 ms until CAPABILITIES arrives or this runs out.
    handshake_timeout_ms: Annotated[float, Range(1, 60_000)] = 1000.0
    # No valid frame from the rig for this long: the link is lost, the plant goes safe.
    silence_timeout_ms: Annotated[float, Range(1, 10_000)] = 250.0
    # Plant ticks fall this fraction of a period after the rig's STATE frames arrive.
    phase_margin: Annotated[float, Range(0, 0.5, low_open=True, high_open=True)] = 0.2
    # run.rate_hz may use at most this share of the link (STATE and CONTROL frames).
    max_utilisation: Annotated[float, Range(0, 1, low_open=True)] = 0.9


class RigEmulatorConfig(_Strict):
    """The emulated rig on a pseudo-terminal. When enabled, `hil run` starts it first and
    points serial.port at it. Faults are seeded. kind: python (plant_server/rig_emulator.py),
    host (the C firmware core built for Linux) or qemu (the C firmware on an emulated
    Cortex-M4F; no fault knobs): plant_server/firmware_rig.py, docs/firmware.md."""

    enabled: bool = False
    kind: Literal["python", "host", "qemu"] = "python"
    seed: Annotated[int, SEED] = 0
    corrupt_byte_rate: Annotated[float, RATIO] = 0.0
    drop_frame_rate: Annotated[float, RATIO] = 0.0
    # Added to each direction of the link, like a USB adapter's latency timer.
    added_latency_ms: Annotated[float, LATENCY_MS] = 0.0
    # Close the pseudo-terminal this long after the rig is first armed; null: never.
    unplug_after_s: Annotated[float, Range(1e-3, 86_400)] | None = None
    # The rig boots this long after it starts (a board that resets when its port is opened):
    # it hears nothing meanwhile, then sends its power-up CAPABILITIES unasked.
    boot_ms: Annotated[float, Range(0, 10_000)] = 0.0
    watchdog_ms: Annotated[int, Range(1, 65_535, "a u16 of the rig protocol")] = 50
    track_limit_m: Annotated[float, TRACK_M] = 1.0
    rig_id: Annotated[int, U32] = 0x48494C31
    # The rig's microsecond clock at power-up (it wraps at 2**32).
    clock_start_us: Annotated[int, U32] = 0
    ready_timeout_s: Annotated[float, Range(0.01, 3_600)] = 30.0


class LoggingConfig(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"


class SecurityConfig(_Strict):
    """ZeroMQ CURVE for every connection to the plant (hil/link/security.py)."""

    curve: bool = False
    # Made by `hil keygen DIR`: plant.key(_secret), controller.key(_secret), authorized/.
    keys_dir: str = "keys"


class TuningConfig(_Strict):
    """`hil tune` (controller_client/tuning, docs/tuning.md)."""

    # Gain name -> [low, high], replacing the law's own bounds for that gain.
    bounds: dict[str, Annotated[list[Annotated[float, GAIN]], Field(
        min_length=2, max_length=2)]] = Field(
        default_factory=dict)
    # Cost over the plant draws: mean_weight * mean + (1 - mean_weight) * worst.
    mean_weight: Annotated[float, RATIO] = 0.7
    duration_s: Annotated[float, Range(1e-3, 60)] = 3.0
    batch_size: Annotated[int, Range(1, 10_000)] = 20
    # Initial states each candidate starts from; null: plant.initial_state.
    starts: list[list[Annotated[float, STATE_ENTRY]]] | None = None
    # The experiment's metrics to minimise (report.json experiment.metrics names) -> weight,
    # e.g. {x.settling_time_s: 1, force.effort: 0.01}; empty: the regulation cost
    # (docs/tuning.md, The cost).
    cost: dict[str, Annotated[float, Range(0, 1e9, "a weight on a metric's magnitude")]] = \
        Field(default_factory=dict)


class _Signal(_Strict):
    """A signal of the experiment (hil/experiment/signals.py): a pure function of run time,
    starting at `at_s` (before it: its initial value or offset)."""

    at_s: Annotated[float, Range(0, 86_400, "up to a day")] = 0.0


class _OnState(_Signal):
    state: Annotated[str, Field(min_length=1)]  # checked against the plant's state names


class StepReference(_OnState):
    signal: Literal["step"]
    value: Annotated[float, STATE_ENTRY]  # the target after `at_s`
    initial: Annotated[float, STATE_ENTRY] | None = None  # before; null: the equilibrium's


class RampReference(_OnState):
    signal: Literal["ramp"]
    slope_per_s: Annotated[float, Range(-1e6, 1e6, "state units per second")]
    initial: Annotated[float, STATE_ENTRY] | None = None  # null: the equilibrium's
    value: Annotated[float, STATE_ENTRY] | None = None  # held once reached; null: never


class SineReference(_OnState):
    signal: Literal["sine"]
    amplitude: Annotated[float, STATE_ENTRY]
    frequency_hz: Annotated[float, Range(0, 10_000, low_open=True)]
    phase_deg: Annotated[float, Range(-360, 360)] = 0.0
    offset: Annotated[float, STATE_ENTRY] | None = None  # null: the equilibrium's


class SquareReference(SineReference):
    signal: Literal["square"]  # type: ignore[assignment]


class ChirpReference(_OnState):
    """A linear chirp from `f0_hz` to `f1_hz` over `duration_s`, then the offset again."""

    signal: Literal["chirp"]
    amplitude: Annotated[float, STATE_ENTRY]
    f0_hz: Annotated[float, Range(0, 10_000)]
    f1_hz: Annotated[float, Range(0, 10_000)]
    duration_s: Annotated[float, Range(0, 86_400, low_open=True)]
    offset: Annotated[float, STATE_ENTRY] | None = None  # null: the equilibrium's


class CsvReference(_OnState):
    """A reference from a CSV file of `time_s,value` rows (a header line is skipped), the path
    relative to the config file's folder: linear between its points (`hold`: each value held
    until the next), its first value before them and its last after; times from `at_s`."""

    signal: Literal["csv"]
    path: Annotated[str, Field(min_length=1)]
    hold: bool = False


ReferenceSignal = Annotated[StepReference | RampReference | SineReference | SquareReference
                            | ChirpReference | CsvReference, Field(discriminator="signal")]
INPUT_ENTRY = Range(-1e6, 1e6, "in the input's own unit")


class _OnInput(_Signal):
    input: Annotated[str, Field(min_length=1)]  # checked against the plant's input names


class PulseDisturbance(_OnInput):
    signal: Literal["pulse"]
    value: Annotated[float, INPUT_ENTRY]
    duration_s: Annotated[float, Range(0, 86_400, low_open=True)]


class StepDisturbance(_OnInput):
    signal: Literal["step"]
    value: Annotated[float, INPUT_ENTRY]


class SineDisturbance(_OnInput):
    signal: Literal["sine"]
    amplitude: Annotated[float, INPUT_ENTRY]
    frequency_hz: Annotated[float, Range(0, 10_000, low_open=True)]
    phase_deg: Annotated[float, Range(-360, 360)] = 0.0


class NoiseDisturbance(_OnInput):
    """Seeded band-limited noise: a sum of `components` sines of random frequencies in
    (0, bandwidth_hz] and random phases (from `seed`), of `std` RMS in all."""

    signal: Literal["noise"]
    std: Annotated[float, Range(0, 1e6, "in the input's own unit")]
    bandwidth_hz: Annotated[float, Range(0, 10_000, low_open=True)]
    seed: Annotated[int, SEED] = 0
    components: Annotated[int, Range(1, 256)] = 32


class ParameterDisturbance(_Signal):
    """A plant parameter changed from `at_s` on (hil/experiment/parameters.py): `value` added
    to it (`mode: add`, a mass put on the cart), or the parameter set to `value` (`mode:
    set`). Names are the plant's parameter names (`cart_mass_kg`), checked when it is built."""

    parameter: Annotated[str, Field(min_length=1)]
    signal: Literal["step"] = "step"
    value: Annotated[float, Range(-1e9, 1e9, "in the parameter's own unit")]
    mode: Literal["add", "set"] = "add"


def _disturbance_kind(given: Any) -> str | None:
    """A disturbance's tag: `parameter` for one that names a parameter, else its signal."""
    if isinstance(given, dict):
        return "parameter" if "parameter" in given else given.get("signal")
    return "parameter" if isinstance(given, ParameterDisturbance) else getattr(
        given, "signal", None)


DisturbanceSignal = Annotated[
    Annotated[PulseDisturbance, Tag("pulse")] | Annotated[StepDisturbance, Tag("step")]
    | Annotated[SineDisturbance, Tag("sine")] | Annotated[NoiseDisturbance, Tag("noise")]
    | Annotated[ParameterDisturbance, Tag("parameter")], Discriminator(_disturbance_kind)]


class SensorsConfig(_Strict):
    """What the law sees of the state (hil/experiment/sensors.py), by state name: Gaussian
    noise (`noise_std`), then quantisation to `resolution` (in the state's unit) or to an
    encoder's `counts_per_rev` (an angle in rad), then `delay_samples` controls late."""

    noise_std: dict[str, Annotated[float, NOISE_STD]] = Field(default_factory=dict)
    resolution: dict[str, Annotated[float, Range(0, 1_000, low_open=True)]] = Field(
        default_factory=dict)
    counts_per_rev: dict[str, Annotated[int, Range(1, 2**31)]] = Field(default_factory=dict)
    delay_samples: Annotated[int, Range(0, 10_000)] = 0
    seed: Annotated[int, SEED] = 0

    @model_validator(mode="after")
    def _one_quantiser(self) -> SensorsConfig:
        both = sorted(set(self.resolution) & set(self.counts_per_rev))
        if both:
            raise ValueError(f"state {both[0]!r} has both a resolution and counts_per_rev; "
                             f"give one")
        return self


class ActuatorConfig(_Strict):
    """The simulated plant's actuators, per input by name (hil/experiment/actuator.py): an
    input delay, a dead zone, a first-order lag, a rate limit, between the control and the
    model."""

    deadband: dict[str, Annotated[float, Range(0, 1e6, "in the input's own unit")]] = Field(
        default_factory=dict)
    lag_s: dict[str, Annotated[float, Range(0, 60, "a time constant")]] = Field(
        default_factory=dict)
    rate_limit_per_s: dict[str, Annotated[float, Range(
        0, 1e9, "input units per second", low_open=True)]] = Field(default_factory=dict)
    # An input delay of whole plant periods before them (every input; both modes): each
    # control acts this many periods after it arrived; the safe output acts at once.
    delay_steps: Annotated[int, Range(0, 10_000)] = 0


class SwingupMetricConfig(_Strict):
    """The swing-up time (docs/experiments.md, "Swing-up"): when `state` (an angle, taken from
    its target the short way round if it wraps; null: the plant's first wrapping state, a
    pendulum's angle) first entered `window_rad` and then stayed there to the run's end, or
    for `hold_s` when given."""

    state: Annotated[str, Field(min_length=1)] | None = None
    window_rad: Annotated[float, Range(1e-6, 3.14, "half a turn")] = 0.1
    hold_s: Annotated[float, Range(0, 86_400, "up to a day", low_open=True)] | None = None


class ExperimentConfig(_Strict):
    """An experiment (docs/experiments.md): references on states, disturbances on inputs,
    sensors. State and input names are checked against the plant when it is built."""

    # Tuples, not lists: hil/config_ranges.py's table walks lists of numbers, not of tagged
    # models; each signal's numbers are range-checked by their own annotations all the same.
    reference: tuple[ReferenceSignal, ...] = ()
    disturbances: tuple[DisturbanceSignal, ...] = ()
    sensors: SensorsConfig = Field(default_factory=SensorsConfig)
    actuator: ActuatorConfig = Field(default_factory=ActuatorConfig)
    swingup: SwingupMetricConfig | None = None

    @field_validator("reference")
    @classmethod
    def _one_signal_per_state(cls, v: tuple[Any, ...]) -> tuple[Any, ...]:
        seen: set[str] = set()
        for signal in v:
            if signal.state in seen:
                raise ValueError(f"state {signal.state!r} has two references; give each state "
                                 f"one signal")
            seen.add(signal.state)
        return v


class Config(_Strict):
    run: RunConfig = Field(default_factory=RunConfig)
    plant: PlantConfig = Field(default_factory=PlantConfig)
    controller: ControllerConfig = Field(default_factory=ControllerConfig)
    gates: GatesConfig = Field(default_factory=GatesConfig)
    record: RecordConfig = Field(default_factory=RecordConfig)
    realtime: RealtimeConfig = Field(default_factory=RealtimeConfig)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    faults: FaultsConfig = Field(default_factory=FaultsConfig)
    serial: SerialConfig = Field(default_factory=SerialConfig)
    rig_emulator: RigEmulatorConfig = Field(default_factory=RigEmulatorConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    tuning: TuningConfig = Field(default_factory=TuningConfig)
    # Optional: a run without it is the plain regulation run (docs/experiments.md).
    experiment: ExperimentConfig | None = None
    # The folder of the config file, searched first for "module:Class" laws and plant models.
    # Set by load_config from the file's path; kept when `hil run` passes the config on.
    source_dir: str | None = None

    @model_validator(mode="after")
    def _network_needs_authentication(self) -> Config:
        p = self.plant
        if not (is_loopback_endpoint(p.endpoint) or self.security.curve
                or p.allow_unauthenticated_network):
            raise ValueError(
                f"plant.endpoint {_show_key(p.endpoint)} accepts controllers from the network "
                "without authentication: set security.curve: true (keys from `hil keygen DIR`, "
                "security.keys_dir: DIR), bind to 127.0.0.1, or set "
                "plant.allow_unauthenticated_network: true on an isolated lab network")
        return self

    @property
    def period_ns(self) -> int:
        return round(1e9 / self.run.rate_hz)

    @property
    def search_path(self) -> list[str]:
        """Folders searched first for a "module:Class" law or plant model."""
        return [self.source_dir] if self.source_dir else []


def plant_timeout_ms(config: Config) -> float:
    """How long the controller waits on a silent plant in this run's mode."""
    controller = config.controller
    return (controller.lockstep_plant_timeout_ms if config.run.mode == "lockstep"
            else controller.plant_timeout_ms)


def is_loopback_endpoint(endpoint: str) -> bool:
    """True for ipc:// and inproc:// and for tcp:// on a loopback address or localhost."""
    if not endpoint.startswith("tcp://"):
        return True
    host = endpoint[len("tcp://"):].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name or a host name: may face the network


def _check_endpoint(v: str) -> str:
    if not v.startswith(("tcp://", "ipc://", "inproc://")):
        raise ValueError("must be a ZeroMQ endpoint such as tcp://127.0.0.1:5600 or ipc:///tmp/x")
    return v


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """Load and validate `path` (None: defaults), then apply dotted-key `overrides`."""
    source = str(path) if path is not None else "<defaults>"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read config: {exc.strerror}") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {' '.join(str(exc).split())}"
                              ) from None
        except (ValueError, RecursionError) as exc:  # an int too long to convert, deep nesting
            raise ConfigError(f"{source}: cannot read as YAML: {exc}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: top level must be a mapping of sections, got "
                              f"{type(loaded).__name__}")
        data = loaded
        data.setdefault("source_dir", str(Path(path).resolve().parent))
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for depth, key in enumerate(parents):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):  # `run:` left empty (null), or not a mapping
                section = ".".join(parents[:depth + 1])
                raise ConfigError(
                    f"{source}: {section}: must be a mapping of keys to set {dotted} from the "
                    f"command line, got {'an empty section' if child is None else repr(child)}"
                    f"; give it keys or delete the line")
            node = child
        node[leaf] = value
    return validate_config(data, source)


def validate_config(data: dict[str, Any], source: str = "<config>") -> Config:
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    problem = serial_link_problem(config)
    if problem is not None:
        raise ConfigError(f"{source}: {problem}")
    return config


_STANDARD_BAUDS = (115_200, 230_400, 460_800, 921_600, 1_000_000, 2_000_000, 3_000_000)


def serial_link_problem(config: Config, n_inputs: int = 1) -> str | None:
    """Why the serial settings cannot work together, with the arithmetic; None if they can.

    The frame sizes and the link budget come from `firmware_protocol`, a leaf package that
    imports nothing of ours, so the check runs wherever a config is loaded (`hil run` refuses
    before it starts any process) with one input, the fewest a plant has; the plant, which
    builds the model, checks again with its `n_inputs`.
    """
    from firmware_protocol import State, frame_bytes, max_rate_hz
    from firmware_protocol.link_budget import UART_8N1_BITS_PER_BYTE as bits
    from firmware_protocol.link_budget import control_frame_bytes

    if config.rig_emulator.enabled and config.plant.backend != "serial":
        return "rig_emulator.enabled needs plant.backend: serial"
    if config.plant.backend != "serial":
        return None
    if config.run.mode != "realtime":
        return (f"plant.backend serial runs in run.mode realtime only (a rig keeps its own "
                f"time and cannot be stepped), got {config.run.mode}")
    n = len(config.plant.initial_state)
    if not 1 <= n <= 8:
        return None  # the plant refuses an initial_state that does not fit its model
    baud, rate, share = config.serial.baud, config.run.rate_hz, config.serial.max_utilisation
    state_b = frame_bytes(State(timestamp_us=0, values=(0.0,) * n))
    control_b = control_frame_bytes(n_inputs)
    frame_b = max(state_b, control_b)
    ceiling = max_rate_hz(baud, state_b, control_b)
    if rate <= ceiling * share:
        return None
    needed = rate * frame_b * bits
    suggest = next((b for b in _STANDARD_BAUDS if b * share >= needed), None)
    return (
        f"run.rate_hz {rate:g} is more than serial.baud {baud} can carry: each period the rig "
        f"sends a {state_b}-byte STATE ({n} values) and the host a {control_b}-byte CONTROL "
        f"({n_inputs} input{'s' if n_inputs != 1 else ''}), "
        f"{bits} bits a byte, so the link carries at most {baud} / {bits} / {frame_b} = "
        f"{ceiling:.0f} Hz, {ceiling * share:.0f} Hz within serial.max_utilisation {share:g}; "
        f"{rate:g} Hz needs {rate:g} x {frame_b} x {bits} = {needed:.0f} baud "
        f"({needed / share:.0f} at {share:.0%}). Lower "
        f"run.rate_hz to <= {math.floor(ceiling * share)} or raise serial.baud"
        + (f" (e.g. {suggest})" if suggest else "")
    )


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line: the source, then each problem as `key.path: what is wrong (got value)`."""
    problems = []
    for err in exc.errors():
        path = ".".join(_show_key(part) for part in err["loc"]) or "<top>"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown key; allowed here: {', '.join(_allowed_keys(err['loc']))}"
        # An out-of-range number is already in its message.
        shown = err["type"] in ("extra_forbidden", OUT_OF_RANGE)
        suffix = "" if shown else f" (got {_show_input(err.get('input'))})"
        problems.append(f"{path}: {msg}{suffix}")
    if len(problems) == 1:
        return f"{source}: {problems[0]}"
    return f"{source}: {len(problems)} problems: " + "; ".join(problems)


_SHOWN_CHARS = 80


def _show_key(part: str | int) -> str:
    """A key of the path to a problem; one that is not printable text shows quoted, escaped,
    so the message stays one line."""
    text = str(part)
    return text if text.isprintable() and text.strip() == text and text else repr(text)


def _show_input(value: Any) -> str:
    """The value a problem was found in, cut to a readable length."""
    text = show_number(value) if isinstance(value, int) else repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    models: list[type[BaseModel]] = [Config]
    keyed = False  # the part before was a mapping of names (sensors.states) to models
    for part in loc[:-1]:
        if isinstance(part, int) or keyed:  # a list's entry, a mapping's name: model taken
            keyed = False
            continue
        tagged = [m for m in models if _tag(m) == part]
        if tagged:  # a tagged union's member (`signal: step`): the path names its tag
            models = tagged
            continue
        field = models[0].model_fields.get(str(part)) if len(models) == 1 else None
        if field is None:
            return []
        models = _models_in(field.annotation)
        keyed = typing.get_origin(field.annotation) is dict
        if not models:
            return []
    return sorted(models[0].model_fields) if len(models) == 1 else []


def _tag(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("signal")
    args = typing.get_args(field.annotation) if field is not None else ()
    return str(args[0]) if args else None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models a field holds: itself, or those of an optional, a list or a union."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def build_plant_model(config: Config) -> Any:
    """The model `plant.model` names (built in, an entry point, or "module:Class" found first
    beside the config file), checked at `plant.initial_state`; ConfigError saying why not.
    The plant simulates it; the controller's laws use it as their nominal model."""
    from hil.dynamics import PluginError, check_model, create_model

    plant_config = config.plant
    try:
        model = create_model(plant_config.model, plant_config.params,
                             substeps=plant_config.substeps, search_path=config.search_path,
                             fmu=fmu_path(config), fmu_outputs=plant_config.fmu_outputs)
    except PluginError as exc:
        raise ConfigError(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"plant.params: {exc}") from None
    n = len(model.state_names)
    if len(plant_config.initial_state) != n:
        raise ConfigError(
            f"plant.initial_state: model {model.name!r} has {n} states "
            f"{list(model.state_names)}, got {len(plant_config.initial_state)} values")
    try:
        check_model(model, plant_config.initial_state)
    except PluginError as exc:
        raise ConfigError(str(exc)) from None
    return model


def fmu_path(config: Config) -> str | None:
    """`plant.fmu`, relative to the config file's folder unless absolute."""
    path = config.plant.fmu
    if path is None or Path(path).is_absolute() or not config.source_dir:
        return path
    return str(Path(config.source_dir) / path)


def dump_config(config: Config) -> str:
    """The resolved config as YAML (written into every run folder)."""
    data = config.model_dump(mode="json")
    if data.get("experiment") is None:  # a run without an experiment dumps as it always did
        data.pop("experiment", None)
    if not data["gates"].get("metrics"):
        data["gates"].pop("metrics", None)
    return str(yaml.safe_dump(data, sort_keys=False))
