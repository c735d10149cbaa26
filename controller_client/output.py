"""What a control law returned, checked in one place for every transport: one number per input.

A law is user code: it may return a float, an int, a NumPy scalar (np.float32, np.int64, ...)
or, per input, an array or list (`-K @ x` is a shape-(1,) array for one input). Anything else
(None, a string, a complex, a bool, the wrong number of values) is the law's error, named with
what it returned. Non-finite numbers pass: the plant's non-finite gate is where they are
refused, counted and the plant made safe, the same as a NaN from any other controller.
"""

from __future__ import annotations

from numbers import Real
from typing import Literal, overload

import numpy as np


class LawOutputError(ValueError):
    """A law returned something that is not one number per input; the message says what."""


def _number(law_name: str, value: object, where: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Real, np.number)) \
            or isinstance(value, np.complexfloating):
        raise LawOutputError(f"control law {law_name} returned {where}{value!r} "
                             f"({type(value).__name__}), not a real number")
    return float(value)


@overload
def law_output(law_name: str, value: object, n_inputs: Literal[1]) -> float: ...


@overload
def law_output(law_name: str, value: object, n_inputs: int) -> float | tuple[float, ...]: ...


def law_output(law_name: str, value: object, n_inputs: int) -> float | tuple[float, ...]:
    """`value` (what `law_name`'s compute returned) as the input: a float for one input, a
    tuple of `n_inputs` floats otherwise; LawOutputError naming the law and the value."""
    if type(value) is float and n_inputs == 1:
        return value
    if isinstance(value, (np.ndarray, list, tuple)):
        values = np.asarray(value, dtype=object).ravel() if isinstance(value, (list, tuple)) \
            else value.ravel()
        if len(values) != n_inputs:
            shape = np.shape(value) if not isinstance(value, (list, tuple)) else len(value)
            raise LawOutputError(
                f"control law {law_name} returned {len(values)} values (shape {shape}) for "
                f"{n_inputs} input{'s' if n_inputs != 1 else ''}: {_short(value)}; return one "
                f"number per input")
        numbers = tuple(_number(law_name, v, f"element {i} = ") for i, v in enumerate(values))
        return numbers[0] if n_inputs == 1 else numbers
    if n_inputs != 1:
        raise LawOutputError(f"control law {law_name} returned {_short(value)} for {n_inputs} "
                             f"inputs; return one number per input")
    return _number(law_name, value, "")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."
