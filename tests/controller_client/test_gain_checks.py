"""Every gain goes through one check (controllers/gains.py), at load and at run time: finite,
a sane magnitude, and the law's own declared `gain_bounds`; the message names the gain, the
value and the range."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from controller_client.controllers import GainError, PluginError, create_controller

LQR_DEFAULTS = [10.0, 100.0, 100.0, 1.0, 1.0, 1.0, 0.01]


@pytest.mark.parametrize(("r", "message"), [
    (1e-300, "lqr gain r (index 6) must be 0 or of magnitude in [1e-12, 1e+09], got 1e-300"),
    (1e300, "lqr gain r (index 6) must be 0 or of magnitude in [1e-12, 1e+09], got 1e+300"),
    (math.inf, "lqr gain r (index 6) must be finite and > 0, got inf"),
])
def test_an_absurd_gain_is_refused_at_load_and_at_run_time(r: float, message: str) -> None:
    with pytest.raises(GainError) as at_load:
        create_controller("lqr", [*LQR_DEFAULTS[:-1], r])
    assert str(at_load.value) == message
    law = create_controller("lqr")
    with pytest.raises(GainError) as at_run:
        law.set_gains([*LQR_DEFAULTS[:-1], r])
    assert str(at_run.value) == message
    assert list(law.gains) == LQR_DEFAULTS  # the old gains stay


def test_the_edges_of_the_sane_range_are_accepted() -> None:
    law = create_controller("classical_smc")
    law.set_gains([1e9, 1e-12, 42.0, 7.2, 20.0, 5.0])
    assert law.gains[:2] == (1e9, 1e-12)


LAW = '''
class Bounded:
    gain_names = ("k", "c")
    default_gains = (-2.0, 0.0)
    gain_bounds = {"k": (-5.0, -1.0)}

    def __init__(self, gains, **context):
        self.gains = list(gains)

    def set_gains(self, gains):
        self.gains = list(gains)

    def compute(self, state, t):
        return 0.0
'''


def own_law(tmp_path: Path, module: str, text: str = LAW) -> Path:
    """`text` as module `module` (the registry keeps each "module:Class" it loaded)."""
    (tmp_path / f"{module}.py").write_text(text)
    return tmp_path


def test_a_law_s_declared_bounds_are_checked_at_load_and_at_run_time(tmp_path: Path) -> None:
    folder = own_law(tmp_path, "bounded")
    with pytest.raises(GainError) as at_load:
        create_controller("bounded:Bounded", [-6.0, 0.0], search_path=[str(folder)])
    assert str(at_load.value) == ("bounded:Bounded gain k (index 0) must be in [-5, -1] (the "
                                  "law's gain_bounds), got -6.0")
    law = create_controller("bounded:Bounded", search_path=[str(folder)])
    assert law.gains == (-2.0, 0.0)  # negative and zero gains: an own law's to choose
    with pytest.raises(GainError, match=r"gain k \(index 0\) must be in \[-5, -1\]"):
        law.set_gains([0.5, 0.0])
    with pytest.raises(GainError, match=r"gain c \(index 1\) must be 0 or of magnitude in "
                                        r"\[1e-12, 1e\+09\], got 1e-20"):
        law.set_gains([-2.0, 1e-20])
    assert law.gains == (-2.0, 0.0)
    law.set_gains([-5.0, 3.0])
    assert law.gains == (-5.0, 3.0)


@pytest.mark.parametrize(("module", "bounds", "message"), [
    ("unknown_name", '{"q": (0, 1)}', "gain_bounds names 'q', which is not one of its gains "
                                      "[k, c]"),
    ("inverted", '{"k": (1, 0)}', "gain_bounds['k'] must have low <= high, got (1, 0)"),
    ("not_a_pair", '{"k": 3}', "gain_bounds['k'] must be (low, high), got 3"),
])
def test_malformed_gain_bounds_are_the_law_s_error_named_at_load(
        tmp_path: Path, module: str, bounds: str, message: str) -> None:
    folder = own_law(tmp_path, module, LAW.replace('{"k": (-5.0, -1.0)}', bounds))
    with pytest.raises(PluginError) as refused:
        create_controller(f"{module}:Bounded", search_path=[str(folder)])
    assert str(refused.value) == f"controller.name: {module}:Bounded.{message}"
