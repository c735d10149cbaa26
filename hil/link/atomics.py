"""Sequentially consistent operations on 32-bit words in shared memory, compiled by numba.

The futex doorbell of hil/link/shm.py is a store-then-load on each side: the writer bumps the
bell and then reads the reader's `waiters` flag; the reader raises the flag and then reads
the slot's counter. x86-64 may let a load pass an earlier store (to another address), so with
plain stores both sides could read the other's old value: the writer skips FUTEX_WAKE and the
reader sleeps through the message until its timeout. A locked read-modify-write is a full
barrier on x86-64, so each side's store is made one (`lock xadd` for the bell, `xchg` for the
flag) and the load after it cannot be reordered before it. Python has no atomics; llvmlite
emits these instructions inside tiny numba functions, compiled (and cached) on first use
via `warm()`, called when a segment is opened, never on the loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic


def _rmw_u32(op: str) -> Any:
    """An intrinsic (address, value) -> old value: a seq_cst `atomicrmw op` on a u32."""

    def rmw(typingctx: Any, addr: Any, value: Any) -> Any:
        sig = types.uint32(types.intp, types.uint32)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            ptr = builder.inttoptr(args[0], ir.IntType(32).as_pointer())
            return builder.atomic_rmw(op, ptr, args[1], "seq_cst")

        return sig, codegen

    return intrinsic(rmw)


_fetch_add_u32 = _rmw_u32("add")  # lock xadd
_swap_u32 = _rmw_u32("xchg")  # xchg (locked by itself)


@intrinsic
def _load_u32(typingctx: Any, addr: Any) -> Any:
    sig = types.uint32(types.intp)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        ptr = builder.inttoptr(args[0], ir.IntType(32).as_pointer())
        return builder.load_atomic(ptr, "seq_cst", 4)

    return sig, codegen


@njit(cache=True)
def bump_then_read(bell_addr: int, flag_addr: int) -> bool:
    """Add 1 to the word at `bell_addr` (wrapping), then read the word at `flag_addr`:
    True when it is not 0. The read cannot pass the add."""
    _fetch_add_u32(bell_addr, np.uint32(1))
    return bool(_load_u32(flag_addr) != 0)  # type: ignore[call-arg]


@njit(cache=True)
def raise_flag(flag_addr: int) -> None:
    """Set the word at `flag_addr` to 1; any read after this call sees the world after it."""
    _swap_u32(flag_addr, np.uint32(1))


def warm() -> None:
    """Compile (or load from numba's cache) both functions, off the loop."""
    words = np.zeros(2, dtype=np.uint32)
    address = int(words.ctypes.data)
    raise_flag(address + 4)
    if not bump_then_read(address, address + 4) or int(words[0]) != 1:
        raise RuntimeError("hil.link.atomics: the compiled doorbell operations misbehave")
