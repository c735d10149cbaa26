"""The same-host data plane in shared memory: one seqlock slot per direction, futex doorbells.

The plant creates one segment per run (`/dev/shm/hil-<hash of its bound endpoint>`), gives
its name and a per-attach session number to the controller it accepts (in the `welcome`
over ZeroMQ, which keeps the control plane), and unlinks it when it closes. The segment
carries the same fields as the wire's `state` and `control` messages, with the same
sequence numbers:

| offset | field                                                                          |
|--------|--------------------------------------------------------------------------------|
| 0      | magic, version, n_states, plant pid, session (of the attached controller)     |
| 32     | the plant's pid namespace (a killed plant's segment is swept only from its own) |
| 40     | n_inputs                                                                       |
| 64     | state slot: counter, bell, waiters, seq, t_ns, flags, state[n] (plant writes)  |
| 384    | control slot: counter, bell, waiters, session, seq, state_seq, t_state_rx_ns,  |
|        | t_send_ns, compute_ns, u[n_inputs] (the controller writes)                     |

Each slot has a single writer and holds the newest message (newest-state semantics): the
writer makes its counter odd, writes the fields, makes it even; a reader that sees the
counter change under it or odd retries, so it never takes a torn message. x86-64 keeps
stores in order and loads in order (TSO), which is all a seqlock needs; other CPUs are
refused (`SharedMemoryError`). Counters and bells are read and written through memoryview
casts (one aligned load or store each); the fields in native aligned struct formats. A
reader that sees the counter jump by more than 2 counts the messages it never saw
(`overwritten`).

Waiting. A reader spins on the counter for a while and then sleeps on the slot's doorbell (a
futex word in the segment, `FUTEX_WAIT` with a timeout) after raising its `waiters` flag;
the writer bumps the bell after each message and calls `FUTEX_WAKE` only when the flag is
up, so a writer whose reader spins pays no system call. The bell's bump and the flag's raise
are locked instructions (hil/link/atomics.py): on x86-64 a plain store may be passed by the
load after it, and a wake-up could be lost. Every sleep is bounded (the caller's deadline and
`MAX_SLEEP_NS`), so a peer that dies never leaves the other waiting for ever.
benchmarks/bench_shm.py measures this against pure spinning, spinning with sched_yield and
pinning: docs/shm.md.

A segment left by a killed plant (same name, its pid dead) is removed and replaced; one whose
plant still lives is refused with a message naming the pid. A plant that starts also removes
killed plants' segments under other endpoints (`sweep_stale`).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import secrets
import struct
from collections.abc import Callable
from multiprocessing import shared_memory
from typing import Any, cast

from hil.link import atomics

SEGMENT_BYTES = 512
MAGIC = 0x314D48534C4948  # "HILSHM1"
VERSION = 2  # 2: the control slot carries an input vector
MAX_STATES = 32
MAX_INPUTS = 8  # 384 + 64 + 8 * 8 = SEGMENT_BYTES
MAX_SLEEP_NS = 1_000_000  # a sleeping reader re-checks everything at least this often
# A take that finds the slot mid-write this many times in a row gives up for now (a write
# takes well under a microsecond; a writer killed mid-write leaves its counter odd).
MAX_TAKE_TRIES = 1000

_HEADER = struct.Struct("@QIIqq")  # magic, version, n_states, plant pid, session
_PIDNS = struct.Struct("@Q")  # at _PIDNS_AT: the plant's pid namespace (its pid means nothing
_PIDNS_AT = 32  # in another: a container's plant sharing /dev/shm is never swept as dead)
_STATE_AT = 64
_CONTROL_AT = 384
_SESSION_WORD = 3  # the header's session, as a u64 word (byte 24)
_WAITERS_OFF = 12  # within a slot: counter u64 @0, bell u32 @8, waiters u32 @12
_INPUTS = struct.Struct("@I")  # at _INPUTS_AT: n_inputs
_INPUTS_AT = 40

_FUTEX_WAIT = 0
_FUTEX_WAKE = 1
_SYS_FUTEX = 202  # x86-64
_ETIMEDOUT = 110


class SharedMemoryError(RuntimeError):
    """The shared-memory data plane cannot be set up; the message says why and what to do."""


class Replaced(SharedMemoryError):
    """This controller's session is over: the plant gave the control slot to another
    controller (after this one let the watchdog expire). Nothing was written."""


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc: Any = None


def _syscall() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc.syscall


def check_platform() -> None:
    """The seqlock relies on x86-64 ordering and the futex system call number; the doorbell's
    locked instructions are compiled here, off the loop (a controller calls this before its
    hello, so the compile never delays its first control)."""
    machine = platform.machine()
    if machine not in ("x86_64", "AMD64") or not os.name == "posix":
        raise SharedMemoryError(
            f"run.transport shm needs Linux on x86-64 (this is {machine}); use run.transport zmq")
    atomics.warm()


def segment_name(endpoint: str) -> str:
    """The segment of the plant bound at `endpoint` (unique: only one plant binds it)."""
    return "hil-" + hashlib.sha256(endpoint.encode()).hexdigest()[:20]


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_namespace() -> int:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def _owner(name: str) -> tuple[int, int]:
    """The plant pid and pid namespace written in segment `name`; (0, 0) when it is not a
    hil-runtime segment (no magic: a foreign file, or one still being created). OSError or
    ValueError when it cannot be opened."""
    seg = _untracked(name, False)
    try:
        buf = cast(memoryview, seg.buf)
        if seg.size < _HEADER.size:
            return 0, 0
        magic, _, _, pid, _ = _HEADER.unpack_from(buf, 0)
        if magic != MAGIC:
            return 0, 0
        has_ns = seg.size >= _PIDNS_AT + _PIDNS.size
        return pid, _PIDNS.unpack_from(buf, _PIDNS_AT)[0] if has_ns else 0
    finally:
        seg.close()


def sweep_stale(keep: str = "") -> list[str]:
    """Remove the segments of plants that died (SIGKILLed: a plant that ends unlinks its own)
    under any endpoint: a hil-runtime segment whose plant pid is gone in this pid namespace.
    Anything else in /dev/shm, a segment being created (no magic yet), a live plant's and
    another namespace's are left alone. The names removed."""
    try:
        names = sorted(n for n in os.listdir("/dev/shm") if n.startswith("hil-") and n != keep)
    except OSError:
        return []
    ns = _pid_namespace()
    removed = []
    for name in names:
        try:
            pid, owner_ns = _owner(name)
        except (OSError, ValueError):
            continue
        if pid > 0 and owner_ns == ns and ns and not _pid_alive(pid):
            _unlink(name)
            removed.append(name)
    return removed


def _untracked(name: str, create: bool, size: int = 0) -> shared_memory.SharedMemory:
    """A SharedMemory the resource tracker leaves alone: Python 3.11's tracker would unlink a
    segment the controller merely opened when the controller exits. We unlink it ourselves."""
    from multiprocessing import resource_tracker

    seg = shared_memory.SharedMemory(name=name, create=create, size=size)
    with contextlib.suppress(Exception):
        resource_tracker.unregister(seg._name, "shared_memory")  # type: ignore[attr-defined]
    return seg


def _unlink(name: str) -> None:
    """Remove a segment without telling the resource tracker (it was never told of it)."""
    import _posixshmem  # type: ignore[import-not-found]

    with contextlib.suppress(FileNotFoundError):
        _posixshmem.shm_unlink("/" + name.lstrip("/"))


class _Bell:
    """The doorbell of one slot: a futex word and a waiters flag in the segment. The bell's
    bump and the flag's raise are locked instructions (hil/link/atomics.py), so neither
    side's next read can pass its own write: a message is never slept through."""

    def __init__(self, seg: shared_memory.SharedMemory, words: memoryview, slot_at: int) -> None:
        self._buf: memoryview = cast(memoryview, seg.buf)
        self._words = words  # the segment as u32 words
        self._bell_at = slot_at + 8
        self._bell = self._bell_at // 4
        self._waiters = (slot_at + _WAITERS_OFF) // 4
        base = ctypes.addressof(ctypes.c_char.from_buffer(self._buf))
        self._bell_addr = base + self._bell_at
        self._waiters_addr = base + slot_at + _WAITERS_OFF
        self._addr = ctypes.c_void_p(self._bell_addr)
        self._syscall = _syscall()
        self._ts = _Timespec(0, 0)
        self._ts_ref = ctypes.byref(self._ts)
        self.wakes = 0  # FUTEX_WAKE calls made (the writer)
        self.sleeps = 0  # FUTEX_WAIT calls made (the reader)

    def ring(self) -> None:
        if atomics.bump_then_read(self._bell_addr, self._waiters_addr):
            self.wakes += 1
            self._syscall(_SYS_FUTEX, self._addr, _FUTEX_WAKE, 1, None, None, 0)

    def value(self) -> int:
        v: int = self._words[self._bell]
        return v

    def sleep(self, seen: int, timeout_ns: int, ready: Callable[[], bool]) -> bool:
        """Sleep until the bell moves past `seen` or `timeout_ns`; `ready()` is re-checked
        after raising the flag, so a message written just before is not slept through
        (-> True, without sleeping)."""
        atomics.raise_flag(self._waiters_addr)
        try:
            if ready():
                return True
            ts = self._ts
            ts.tv_sec, ts.tv_nsec = divmod(max(1000, min(timeout_ns, MAX_SLEEP_NS)), 1_000_000_000)
            self.sleeps += 1
            self._syscall(_SYS_FUTEX, self._addr, _FUTEX_WAIT, seen, self._ts_ref, None, 0)
            return False
        finally:
            self._words[self._waiters] = 0  # a late lowering costs one spare FUTEX_WAKE

    def release(self) -> None:
        self._addr = ctypes.c_void_p(0)
        self._bell_addr = self._waiters_addr = 0


class Segment:
    """One run's segment. The plant `create`s it; the controller `open`s it by name."""

    def __init__(self, seg: shared_memory.SharedMemory, owner: bool) -> None:
        self._seg = seg
        self.name = seg.name.lstrip("/")
        self.owner = owner
        self.buf: memoryview = cast(memoryview, seg.buf)
        # Counters and bells go through these views: one aligned 8- or 4-byte load or store
        # each. (struct.pack_into zeroes its target before writing it: a counter written that
        # way is briefly 0 for a reader.)
        self.u64 = self.buf.cast("Q")
        self.u32 = self.buf.cast("I")
        self.state_bell = _Bell(seg, self.u32, _STATE_AT)
        self.control_bell = _Bell(seg, self.u32, _CONTROL_AT)

    @classmethod
    def create(cls, endpoint: str, n_states: int, n_inputs: int = 1) -> Segment:
        """The plant's segment for `endpoint`; a stale one from a killed plant is replaced."""
        check_platform()
        if not 0 < n_states <= MAX_STATES:
            raise SharedMemoryError(f"shared memory carries 1..{MAX_STATES} states, "
                                    f"the plant has {n_states}")
        if not 0 < n_inputs <= MAX_INPUTS:
            raise SharedMemoryError(f"shared memory carries 1..{MAX_INPUTS} inputs, "
                                    f"the plant has {n_inputs}")
        name = segment_name(endpoint)
        sweep_stale(keep=name)  # killed plants' segments under other endpoints
        try:
            seg = _untracked(name, True, SEGMENT_BYTES)
        except FileExistsError:
            seg = cls._reclaim(name, endpoint)
        buf = cast(memoryview, seg.buf)
        _HEADER.pack_into(buf, 0, 0, VERSION, n_states, os.getpid(), 0)
        buf[_HEADER.size:SEGMENT_BYTES] = bytes(SEGMENT_BYTES - _HEADER.size)
        _PIDNS.pack_into(buf, _PIDNS_AT, _pid_namespace())
        _INPUTS.pack_into(buf, _INPUTS_AT, n_inputs)
        _HEADER.pack_into(buf, 0, MAGIC, VERSION, n_states, os.getpid(), 0)
        return cls(seg, owner=True)

    @staticmethod
    def _reclaim(name: str, endpoint: str) -> shared_memory.SharedMemory:
        pid, _ = _owner(name)
        if _pid_alive(pid) and pid != os.getpid():
            raise SharedMemoryError(
                f"shared-memory segment /dev/shm/{name} for {endpoint} belongs to a running "
                f"hil-plant (pid {pid}): stop it first, or use another plant.endpoint")
        # A killed plant's leftover (its pid is gone): remove it and start afresh.
        _unlink(name)
        return _untracked(name, True, SEGMENT_BYTES)

    @classmethod
    def open(cls, name: str) -> Segment:
        """The controller's side: the segment the plant's welcome named."""
        check_platform()
        try:
            seg = _untracked(name, False)
        except FileNotFoundError:
            raise SharedMemoryError(
                f"the plant serves run.transport shm but its segment /dev/shm/{name} is not "
                "on this machine: shared memory works only with plant and controller on one "
                "host; use run.transport zmq across machines") from None
        header = _HEADER.unpack_from(cast(memoryview, seg.buf), 0) if seg.size >= 64 else (0,)
        if seg.size < SEGMENT_BYTES or header[0] != MAGIC:
            seg.close()
            raise SharedMemoryError(f"/dev/shm/{name} is not a hil-runtime segment")
        if header[1] != VERSION:
            seg.close()
            raise SharedMemoryError(f"/dev/shm/{name} has segment version {header[1]}, "
                                    f"this side {VERSION}")
        return cls(seg, owner=False)

    @property
    def n_states(self) -> int:
        n: int = _HEADER.unpack_from(self.buf, 0)[2]
        return n

    @property
    def n_inputs(self) -> int:
        n: int = _INPUTS.unpack_from(self.buf, _INPUTS_AT)[0]
        return n

    @property
    def plant_pid(self) -> int:
        pid: int = _HEADER.unpack_from(self.buf, 0)[3]
        return pid

    @property
    def session(self) -> int:
        s: int = _HEADER.unpack_from(self.buf, 0)[4]
        return s

    def new_session(self) -> int:
        """A new attach: controls written under any other session are refused."""
        s = secrets.randbits(62) + 1
        self.u64[_SESSION_WORD] = s
        return s

    def close(self) -> None:
        self.state_bell.release()
        self.control_bell.release()
        self.u64.release()
        self.u32.release()
        with contextlib.suppress(BufferError):  # a view still alive: it goes with the process
            self._seg.close()
        if self.owner:
            _unlink(self.name)


class _Writer:
    def __init__(self, seg: Segment, slot_at: int, bell: _Bell) -> None:
        self._buf = seg.buf
        self._u64 = seg.u64
        self._at = slot_at
        self._i = slot_at // 8
        self._bell = bell
        self._ctr: int = seg.u64[self._i]
        if self._ctr & 1:
            self._ctr += 1


class _Reader:
    def __init__(self, seg: Segment, slot_at: int, bell: _Bell) -> None:
        self._buf = seg.buf
        self._u64 = seg.u64
        self._at = slot_at
        self._i = slot_at // 8
        self.bell = bell
        # From 0, not the counter now: a state published before the controller opened the
        # segment (it syncs clocks after the welcome, the plant starts its clock meanwhile) is
        # still taken; in lockstep it is the one the plant waits on.
        self._seen = 0
        self._counting = False  # overwritten counts from the first message taken
        self.overwritten = 0  # messages written that this reader never saw
        self.retries = 0  # reads that raced the writer and were taken again

    def has_new(self) -> bool:
        return bool(self._u64[self._i] != self._seen)

    def wait(self, deadline_ns: int, ready: Callable[[], bool], clock: Callable[[], int],
             spin_first_ns: int = 0, spin_last_ns: int = 0, yield_: bool = False) -> bool:
        """Until `ready()` (-> True) or the deadline (-> False): busy-poll the first
        `spin_first_ns` (an answer that comes quickly is taken without a wake-up) and the last
        `spin_last_ns` before the deadline (a timer wakes late), sleep on the doorbell in
        between, at most MAX_SLEEP_NS at a time so the caller's other inputs are re-checked."""
        spin_until = clock() + spin_first_ns
        bell = self.bell
        while True:
            if ready():
                return True
            now = clock()
            remaining = deadline_ns - now
            if remaining <= 0:
                return False
            if now < spin_until or remaining <= spin_last_ns:
                if yield_:
                    os.sched_yield()
                continue
            if bell.sleep(bell.value(), remaining - spin_last_ns, ready):
                return True


class StateWriter(_Writer):
    """The plant's side of the state slot."""

    def __init__(self, seg: Segment) -> None:
        super().__init__(seg, _STATE_AT, seg.state_bell)
        self._n = seg.n_states
        self._body = struct.Struct(f"@qqq{self._n}d")

    def write(self, seq: int, t_ns: int, state: list[float], flags: int) -> None:
        buf, at, u64, i = self._buf, self._at, self._u64, self._i
        ctr = self._ctr + 1
        u64[i] = ctr
        self._body.pack_into(buf, at + 16, seq, t_ns, flags, *state)
        self._ctr = ctr + 1
        u64[i] = ctr + 1
        self._bell.ring()


class StateReader(_Reader):
    """The controller's side of the state slot."""

    def __init__(self, seg: Segment) -> None:
        super().__init__(seg, _STATE_AT, seg.state_bell)
        n = seg.n_states
        self._n = n
        self._all = struct.Struct(f"@Q8xqqq{n}d")

    def take(self) -> tuple[int, int, int, list[float]] | None:
        """The newest state not yet taken: (seq, t_ns, flags, state), or None."""
        buf, at, u64, i = self._buf, self._at, self._u64, self._i
        for _ in range(MAX_TAKE_TRIES):
            ctr = u64[i]
            if ctr == self._seen:
                return None
            if ctr & 1:
                self.retries += 1
                continue
            fields = self._all.unpack_from(buf, at)
            if u64[i] != ctr or fields[0] != ctr:
                self.retries += 1
                continue
            if self._counting:
                self.overwritten += (ctr - self._seen) // 2 - 1
            self._counting = True
            self._seen = ctr
            return fields[1], fields[2], fields[3], list(fields[4:])
        return None  # a writer stopped mid-write (killed, or refused): never spin for ever


class ControlWriter(_Writer):
    """The controller's side of the control slot, under the session its welcome gave.

    A writer whose session is no longer the segment's (the plant accepted a replacement)
    raises `Replaced` instead of writing, so a controller that was frozen and resumes never
    hides its replacement's controls. Each write starts from the slot's own counter, not a
    private copy: should a replaced writer still race one write in, the counter stays
    consistent and the replacement's next control is seen."""

    def __init__(self, seg: Segment, session: int) -> None:
        super().__init__(seg, _CONTROL_AT, seg.control_bell)
        self.session = session
        self.n_inputs = seg.n_inputs
        self._body = struct.Struct(f"@qqqqqq{self.n_inputs}d")

    def write(self, seq: int, state_seq: int, u: list[float], t_state_rx_ns: int,
              t_send_ns: int, compute_ns: int) -> None:
        """Write a control; `u` holds `n_inputs` floats (struct.error otherwise)."""
        if len(u) != self.n_inputs:
            raise ValueError(f"a control of {len(u)} inputs; the plant has {self.n_inputs} "
                             f"input{'s' if self.n_inputs != 1 else ''}: one number per input")
        buf, at, u64, i = self._buf, self._at, self._u64, self._i
        if u64[_SESSION_WORD] != self.session:
            raise Replaced(
                "this controller was replaced: another controller attached to the plant after "
                "this one let its watchdog expire; its controls are refused")
        ctr = (u64[i] + 1) | 1
        u64[i] = ctr
        self._body.pack_into(buf, at + 16, self.session, seq, state_seq, t_state_rx_ns,
                             t_send_ns, compute_ns, *u)
        u64[i] = ctr + 1
        self._bell.ring()


class ControlReader(_Reader):
    """The plant's side of the control slot."""

    def __init__(self, seg: Segment) -> None:
        super().__init__(seg, _CONTROL_AT, seg.control_bell)
        self.n_inputs = seg.n_inputs
        self._all = struct.Struct(f"@Q8xqqqqqq{self.n_inputs}d")

    def take(self) -> tuple[int, int, int, int, int, int, list[float]] | None:
        """The newest control not yet taken: (session, seq, state_seq, t_state_rx_ns,
        t_send_ns, compute_ns, u), or None."""
        buf, at, u64, i = self._buf, self._at, self._u64, self._i
        for _ in range(MAX_TAKE_TRIES):
            ctr = u64[i]
            if ctr == self._seen:
                return None
            if ctr & 1:
                self.retries += 1
                continue
            fields = self._all.unpack_from(buf, at)
            if u64[i] != ctr or fields[0] != ctr:
                self.retries += 1
                continue
            if self._counting:
                self.overwritten += (ctr - self._seen) // 2 - 1
            self._counting = True
            self._seen = ctr
            return (fields[1], fields[2], fields[3], fields[4], fields[5], fields[6],
                    [fields[7]] if self.n_inputs == 1 else list(fields[7:]))
        return None  # a writer stopped mid-write (killed, or refused): never spin for ever

