"""Two configs' folders each with a plant module of the same name, loaded in one process (as
`hil sweep`'s probe and `hil doctor` do): each config gets its own folder's module."""

from __future__ import annotations

from pathlib import Path

from hil.dynamics import create_model

PLANT = """
import numpy as np

class Lab:
    state_names = ("x", "v")
    state_units = ("m", "m/s")
    input_limit = {limit}

    def derivatives(self, state, u):
        return np.array([state[1], u])
"""


def test_a_module_of_the_same_name_in_another_folder_is_that_folders(tmp_path: Path) -> None:
    limits = []
    for k, limit in enumerate((3.0, 7.0, 3.0)):
        folder = tmp_path / ("a" if limit == 3.0 else "b")
        folder.mkdir(exist_ok=True)
        (folder / "labplant_same_name.py").write_text(PLANT.format(limit=limit))
        model = create_model("labplant_same_name:Lab", {}, substeps=1,
                             search_path=[str(folder)])
        limits.append((k, model.max_force_n))
    assert limits == [(0, 3.0), (1, 7.0), (2, 3.0)]
