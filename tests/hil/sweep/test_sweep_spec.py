"""hil sweep's spec, its plan and its refusals, in process (hil/sweep/spec.py, plan.py).

A bad spec is refused before anything runs, naming the problem and the fix: `hil sweep`
exits 2. The law checks run the controller side's own `law_from_config` in a probe process.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from hil.cli import main
from hil.sweep.plan import plan_runs
from hil.sweep.progress import Progress
from hil.sweep.spec import Flags, SweepSpecError, load_spec

REPO = Path(__file__).resolve().parents[3]
DIP = str(REPO / "configs" / "default.yaml")
CARTPOLE = str(REPO / "configs" / "cartpole.yaml")
STEP = {"reference": [{"state": "x", "signal": "step", "at_s": 0.5, "value": 0.2}],
        "sensors": {"noise_std": {"x": 0.001}},
        "disturbances": [{"input": "force", "signal": "noise", "std": 0.5,
                          "bandwidth_hz": 5.0}]}


def write_spec(tmp_path: Path, **spec: object) -> str:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)


def plan(tmp_path: Path, **spec: object) -> list:
    return plan_runs(load_spec(write_spec(tmp_path, **spec), Flags()), tmp_path / "runs", "t")


def refusal(tmp_path: Path, **spec: object) -> str:
    with pytest.raises(SweepSpecError) as caught:
        plan(tmp_path, **spec)
    return str(caught.value)


def test_every_combination_is_one_run_in_a_fixed_order_with_its_seed_applied(tmp_path):
    runs = plan(tmp_path, configs=[DIP], laws=["lqr", {"name": "classical_smc",
                                                        "label": "smc"}],
                experiments={"step": STEP, "plain": None}, seeds=[4, 5],
                perturb={"theta1": 0.02}, duration_s=1.5, rate_hz=250)
    assert [r.key for r in runs[:4]] == ["default.lqr.step.s4", "default.lqr.step.s5",
                                        "default.lqr.plain.s4", "default.lqr.plain.s5"]
    assert len(runs) == 2 * 2 * 2 and [r.index for r in runs] == list(range(8))
    configs = [yaml.safe_load(r.config_yaml) for r in runs]
    first, second = configs[0], configs[1]
    assert first["run"] == first["run"] | {"mode": "lockstep", "rate_hz": 250.0,
                                          "duration_s": 1.5}
    assert first["controller"]["name"] == "lqr" and configs[4]["controller"]["name"] == \
        "classical_smc"
    assert first["record"]["history_db"] is None and first["record"]["html"] is False
    # The seed: the sensors' stream, each noise disturbance's, and the initial angle.
    assert (first["experiment"]["sensors"]["seed"], second["experiment"]["sensors"]["seed"]) \
        == (4, 5)
    assert [d["seed"] for d in first["experiment"]["disturbances"]] == [4000]
    x0, x1 = first["plant"]["initial_state"], second["plant"]["initial_state"]
    assert x0[1] != x1[1] and abs(x0[1] - 0.1) <= 0.02 and x0[2] == x1[2] == -0.05
    # The same seed moves the same state the same way in every experiment and law.
    assert configs[2]["plant"]["initial_state"] == x0 == configs[4]["plant"]["initial_state"]
    assert configs[2].get("experiment") is None  # the config has none of its own
    # Planned twice, the same runs.
    assert [r.config_yaml for r in plan(tmp_path, configs=[DIP], laws=["lqr", {
        "name": "classical_smc", "label": "smc"}], experiments={"step": STEP, "plain": None},
        seeds=[4, 5], perturb={"theta1": 0.02}, duration_s=1.5, rate_hz=250)] == \
        [r.config_yaml for r in runs]


def test_flags_replace_the_files_keys(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    spec = load_spec(write_spec(tmp_path, configs=[DIP], laws=["lqr"], seeds=2),
                     Flags(configs=("configs/cartpole.yaml",), laws=("lqr", "sta_smc"),
                           seeds="7,9", settings={"run.duration_s": 1.0}))
    assert [c.label for c in spec.configs] == ["cartpole"]
    assert [law.label for law in spec.laws] == ["lqr", "sta_smc"]
    assert spec.seeds == (7, 9) and spec.settings == {"run.duration_s": 1.0}
    assert load_spec(write_spec(tmp_path, configs=[DIP], laws=["lqr"], seeds=3),
                     Flags()).seeds == (1, 2, 3)


@pytest.mark.parametrize(("spec", "needle"), [
    ({"configs": [DIP], "laws": ["lqr"], "sedes": 3}, "unknown key 'sedes'; allowed: configs"),
    ({"configs": [DIP]}, "no laws: give laws:"),
    ({"laws": ["lqr"]}, "no configs: give configs:"),
    ({"configs": ["nowhere.yaml"], "laws": ["lqr"]}, "does not exist; fix the path"),
    ({"configs": [DIP, DIP], "laws": ["lqr"]}, "'default' is given twice; give each a label"),
    ({"configs": [DIP], "laws": ["lqr", "lqr"]}, "'lqr' is given twice"),
    ({"configs": [DIP], "laws": [{"name": "lqr", "gain": [1]}]}, "unknown key 'gain'"),
    ({"configs": [DIP], "laws": ["lqr"], "seeds": [1, 1]}, "'1' is given twice"),
    ({"configs": [DIP], "laws": ["lqr"], "seeds": 0}, "a count of seeds must be 1 to"),
    ({"configs": [DIP], "laws": ["lqr"], "seeds": [-1]}, "integers 0 to 2**32 - 1"),
    ({"configs": [DIP], "laws": [{"name": "lqr", "label": "a b"}]}, "must be letters"),
    ({"configs": [DIP], "laws": ["lqr"], "perturb": {"theta1": -1}}, "half-widths >= 0"),
])
def test_a_malformed_spec_is_refused_naming_the_key(tmp_path, spec, needle):
    with pytest.raises(SweepSpecError, match=None) as caught:
        load_spec(write_spec(tmp_path, **spec), Flags())
    assert needle in str(caught.value)


def test_a_config_that_does_not_load_is_refused_naming_it(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: {rate_hz: -5}\n")
    message = refusal(tmp_path, configs=[str(bad)], laws=["lqr"])
    assert "config bad" in message and "run.rate_hz" in message and "fix the file" in message


def test_an_experiment_naming_a_state_the_plant_lacks_is_refused(tmp_path):
    message = refusal(tmp_path, configs=[CARTPOLE], laws=["lqr"], experiments={
        "step": {"reference": [{"state": "theta1", "signal": "step", "value": 0.1}]}})
    assert "experiment step on config cartpole" in message
    assert "'theta1' is not a state of plant 'cartpole'" in message


def test_seeds_that_would_change_nothing_are_refused(tmp_path):
    message = refusal(tmp_path, configs=[CARTPOLE], laws=["lqr"], seeds=3)
    assert "has nothing seeded" in message and "add perturb:" in message
    assert "'phi' is not a state of plant 'cartpole'" in refusal(
        tmp_path, configs=[CARTPOLE], laws=["lqr"], seeds=2, perturb={"phi": 0.1})


def test_an_unknown_law_and_a_law_that_does_not_fit_the_plant_are_refused(tmp_path):
    message = refusal(tmp_path, configs=[CARTPOLE], laws=["lqr", "no_such_law"])
    assert "law no_such_law on config cartpole" in message
    assert "unknown controller 'no_such_law'; known controllers:" in message
    message = refusal(tmp_path, configs=[DIP, CARTPOLE], laws=["classical_smc"])
    assert "law classical_smc on config cartpole" in message
    assert "designed for plant model dip" in message and "Use lqr" in message


@pytest.mark.parametrize(("out", "said"), [
    ("/proc/no-such-sweep", "cannot make the folder (No such file or directory)"),
    ("a-file", "a file, not a folder"),
    ("a-file/sweep", "a-file is a file, so no folder can be made under it"),
])
def test_an_out_folder_that_cannot_be_made_is_named_in_one_line(tmp_path, capsys, out, said,
                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    code = main(["sweep", "--config", CARTPOLE, "--law", "lqr", "--out", out])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith(f"hil sweep: --out {out}: ")
    assert said in err and "Traceback" not in err


def test_the_command_exits_2_before_any_run_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "sweep"
    code = main(["sweep", "--config", CARTPOLE, "--law", "classical_smc", "--out", str(out)])
    assert code == 2
    assert "hil sweep: law classical_smc on config cartpole" in capsys.readouterr().err
    assert not out.exists()
    assert main(["sweep", "--resume", str(out), "--law", "lqr"]) == 2
    assert "--law cannot change it" in capsys.readouterr().err
    assert main(["sweep", "--resume", str(out)]) == 2
    assert "no sweep to resume there" in capsys.readouterr().err


def test_the_progress_line_counts_runs_and_estimates_what_is_left():
    now = [100.0]
    stream = io.StringIO()
    progress = Progress(4, 1, stream, clock=lambda: now[0])
    progress.start()
    now[0] = 110.0
    progress.run_done("a.lqr.step.s1", "PASS")
    now[0] = 120.0
    progress.run_done("a.lqr.step.s2", "FAIL")
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("hil sweep: 1 of 4 runs already done")
    assert lines[-1] == ("hil sweep [######################........] 3/4 runs, 1 not PASS, "
                         "20 s, ~10 s left  a.lqr.step.s2: FAIL")


def test_an_unreachable_scheduler_exits_3_naming_the_address(tmp_path, capsys):
    from conftest import free_endpoint

    address = free_endpoint()  # a port nothing listens on
    spec = write_spec(tmp_path, configs=[CARTPOLE], laws=["lqr"], duration_s=0.5)
    code = main(["sweep", spec, "--out", str(tmp_path / "sweep"), "--scheduler", address,
                 "--connect-timeout", "1"])
    assert code == 3
    assert f"no Dask scheduler answered at {address} within 1 s" in capsys.readouterr().err
