"""Thread-safety suite: real controllers, real compiled simulations of the real plant model.

Every test name contains "thread" (`pytest -k thread`). The interpreter's switch interval is
shrunk so that threads interleave as often as they can; the compiled simulations release the
GIL, so concurrent evaluations really run side by side.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
import pytest

from controller_client import controllers
from controller_client.controllers import (
    ControllerSpec,
    GainError,
    UnknownControllerError,
    create_controller,
    get_spec,
    known_controllers,
    register_controller,
    registry_snapshot,
    registry_statistics,
)
from controller_client.controllers.classical_smc import ClassicalSMC
from controller_client.tuning import fitness, pso, simulate
from hil.dynamics.dip import DIPModel, DIPParams
from hil.runtime.stability import StabilityMonitor

BUILT_IN = ["adaptive_smc", "classical_smc", "hybrid_adaptive_sta_smc", "lqr", "sta_smc"]
START = (0.0, 0.1, -0.05, 0.0, 0.0, 0.0)
STATE = np.array([0.05, 0.08, -0.04, 0.1, -0.2, 0.3])


@pytest.fixture(autouse=True)
def frequent_thread_switches() -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


def run_threads(target: Callable[[int], None], count: int, timeout_s: float = 60.0) -> None:
    """Run `target(index)` on `count` pool threads released together by a barrier; fail on
    a timeout (a deadlock) instead of hanging, and re-raise the first failure."""
    barrier = threading.Barrier(count)
    pool = ThreadPoolExecutor(max_workers=count)
    futures = [pool.submit(lambda i=i: (barrier.wait(timeout_s), target(i))) for i in range(count)]
    not_done = wait(futures, timeout=timeout_s).not_done
    pool.shutdown(wait=False, cancel_futures=True)
    assert not not_done, f"{len(not_done)} threads still running: deadlock?"
    for f in futures:
        f.result()


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def particles(n: int) -> list[tuple[float, ...]]:
    """Classical-SMC gain vectors around the defaults, all balancing: the surface +-5% (its
    zero dynamics go unstable not far beyond), the reaching gains K, kd +-30%."""
    rng = np.random.default_rng(7)
    base = np.array(ClassicalSMC.default_gains)
    spread = np.array([0.05] * 4 + [0.3] * 2)
    return [tuple(base * rng.uniform(1 - spread, 1 + spread)) for _ in range(n)]


def test_thread_100_concurrent_creations_of_one_controller() -> None:
    made: list[object] = [None] * 100
    before = registry_statistics().created

    def create(i: int) -> None:
        made[i] = create_controller("sta_smc")

    run_threads(create, 100)
    assert registry_statistics().created - before == 100
    assert len({id(law) for law in made}) == 100
    assert len({id(law._mem) for law in made}) == 100  # no shared state arrays
    forces = {law.compute(STATE, 0.0) for law in made}
    assert len(forces) == 1  # same defaults, same first step


def test_thread_mixed_types_created_concurrently_keep_their_type_and_state() -> None:
    names = BUILT_IN * 8
    made: list[object] = [None] * len(names)

    def create_and_step(i: int) -> None:
        law = create_controller(names[i])
        for k in range(50 + i):  # each instance advances its own integrators a different amount
            law.compute(STATE, k * 1e-3)
        made[i] = law

    run_threads(create_and_step, len(names))
    for i, law in enumerate(made):
        assert law.name == names[i]
        assert type(law) is get_spec(names[i]).factory
        assert law.gains == get_spec(names[i]).default_gains
    for a in made:
        for b in made:
            if a is not b:
                assert not np.shares_memory(a._mem, b._mem)
    # isolation: an instance stepped alone the same number of times holds the same state
    for i in (0, 1, 2, 3, 4, 37):
        alone = create_controller(names[i])
        for k in range(50 + i):
            alone.compute(STATE, k * 1e-3)
        np.testing.assert_array_equal(alone._mem, made[i]._mem)


def test_thread_1000_create_destroy_cycles_keep_memory_bounded() -> None:
    def cycles(n: int) -> None:
        for k in range(n):
            law = create_controller(BUILT_IN[k % len(BUILT_IN)])
            law.compute(STATE, 0.0)
            law.reset()
            del law

    cycles(50)  # warm: compiled kernels, LQR's linearisation, allocator pools
    gc.collect()
    before = rss_bytes()
    run_threads(lambda i: cycles(125), 8)  # 1000 cycles
    gc.collect()
    growth = rss_bytes() - before
    assert growth < 8 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB over 1000 cycles"


def test_thread_concurrent_pso_evaluations_equal_the_sequential_ones() -> None:
    swarm = particles(16)
    sequential = [fitness("classical_smc", g, duration_s=2.0) for g in swarm]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(lambda g: fitness("classical_smc", g, duration_s=2.0), swarm))
    assert concurrent == sequential  # bit for bit
    assert all(c < 1.0 for c in sequential)  # every particle balanced (no fall penalty)


def test_thread_particles_are_isolated_even_when_sharing_one_law_object() -> None:
    law = create_controller("hybrid_adaptive_sta_smc")
    mem_before = law._mem.copy()
    starts = [(0.0, 0.02 * (i + 1), -0.01 * i, 0.0, 0.0, 0.0) for i in range(12)]
    sequential = [simulate(law, x0, 1.0) for x0 in starts]
    results: list[object] = [None] * len(starts)

    def evaluate(i: int) -> None:
        results[i] = simulate(law, starts[i], 1.0)

    run_threads(evaluate, len(starts))
    assert results == sequential
    np.testing.assert_array_equal(law._mem, mem_before)  # the simulations worked on copies


def test_thread_1000_concurrent_registry_reads() -> None:
    seen: list[list[str]] = [[] for _ in range(10)]
    # What the registry holds now: the built-ins, and the "module:Class" laws earlier tests in
    # this process registered on first use.
    registered = known_controllers()
    assert set(BUILT_IN) <= set(registered)

    def read(i: int) -> None:
        for k in range(100):
            snap = registry_snapshot()
            name = BUILT_IN[(i + k) % len(BUILT_IN)]
            assert snap[name].name == name
            assert get_spec(name).gain_names == snap[name].gain_names
            seen[i].append(known_controllers()[k % len(registered)])

    run_threads(read, 10)
    assert sum(len(s) for s in seen) == 1000
    assert all(set(s) == set(registered) for s in seen)


def test_thread_mixed_registry_reads_and_writes_keep_integrity(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Writes are what loading an entry point or a "module:Class" law does on first use.
    monkeypatch.setattr(controllers, "_snapshot", controllers._snapshot)  # restored after
    version_before = registry_statistics().version
    registered = set(known_controllers())  # and laws earlier tests registered on first use
    spec = get_spec("classical_smc")
    writers, rounds = 4, 25

    def work(i: int) -> None:
        if i < writers:  # writers: add controllers under new names
            for k in range(rounds):
                name = f"tmp_{i}_{k}"
                register_controller(ControllerSpec(name, spec.factory, spec.gain_names,
                                                   spec.default_gains))
                assert create_controller(name).name == "classical_smc"
        else:  # readers: every snapshot is whole and consistent
            for _ in range(200):
                snap = registry_snapshot()
                assert set(BUILT_IN) <= set(snap)
                assert all(s.name == n for n, s in snap.items())
                with pytest.raises(TypeError):
                    snap["x"] = spec  # type: ignore[index]

    run_threads(work, writers + 8)
    added = {f"tmp_{i}_{k}" for i in range(writers) for k in range(rounds)}
    # no write was lost (swingup, built in too, is for the cartpole and rotary plants)
    assert {"swingup", *BUILT_IN} <= registered
    assert set(known_controllers()) == registered | added
    assert registry_statistics().version - version_before == writers * rounds
    with pytest.raises(ValueError, match="already registered"):
        register_controller(spec)


def test_thread_no_deadlock_creating_controllers_during_concurrent_evaluations() -> None:
    swarm = particles(8)
    stop = threading.Event()

    def creator() -> int:
        n = 0
        while not stop.is_set():
            create_controller(BUILT_IN[n % len(BUILT_IN)]).compute(STATE, 0.0)
            n += 1
        return n

    pool = ThreadPoolExecutor(max_workers=7)
    try:  # not a `with`: a deadlocked pool must fail the test, not hang it on shutdown
        creators = [pool.submit(creator) for _ in range(3)]
        evaluations = [pool.submit(fitness, "classical_smc", g, duration_s=1.0) for g in swarm]
        pending = wait(evaluations, timeout=60).not_done
        stop.set()
        stuck = wait(creators, timeout=30).not_done
    finally:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
    assert not pending and not stuck
    assert all(f.result() < 1.0 for f in evaluations)
    assert all(f.result() > 0 for f in creators)


def test_thread_weakrefs_are_cleared_after_concurrent_use() -> None:
    refs: list[weakref.ref] = []
    lock = threading.Lock()

    def use(i: int) -> None:
        law = create_controller(BUILT_IN[i % len(BUILT_IN)])
        simulate(law, START, 0.2)
        law.compute(STATE, 0.0)
        with lock:
            refs.append(weakref.ref(law))

    run_threads(use, 20)
    gc.collect()
    assert len(refs) == 20
    assert all(r() is None for r in refs)


def test_thread_registry_counters_are_exact_under_contention() -> None:
    per_thread = 20  # 8 threads x 3 calls each: the counters' updates interleave plenty
    before = registry_statistics()

    def hammer(i: int) -> None:
        for k in range(per_thread):
            create_controller("lqr" if k % 2 else "classical_smc")
            with pytest.raises(GainError):
                create_controller("classical_smc", [1.0])
            with pytest.raises(UnknownControllerError):
                create_controller("nope")

    run_threads(hammer, 8)
    after = registry_statistics()
    assert after.created - before.created == 8 * per_thread
    assert after.rejected - before.rejected == 8 * per_thread * 2


def test_thread_stability_monitor_read_while_the_loop_writes() -> None:
    law, model = create_controller("sta_smc"), DIPModel(DIPParams(), substeps=4)
    monitor = StabilityMonitor(law.max_force_n, 50.0, window=256, sigma_floor=law.sigma_floor)
    reference = StabilityMonitor(law.max_force_n, 50.0, window=256, sigma_floor=law.sigma_floor)
    samples: list[tuple[float, float, float]] = []
    x, nxt = np.array([0.0, 0.15, -0.1, 0.0, 0.0, 0.0]), np.empty(6)
    for _ in range(3000):  # a real closed loop
        u = law.compute(x, 0.0)
        samples.append((law.sigma, u, law.mass_condition))
        model.step(x, u, 1e-3, nxt)
        x, nxt = nxt, x
    done = threading.Event()
    reads: list[int] = []

    def work(i: int) -> None:
        if i == 0:
            for s in samples:
                monitor.update(*s)
            done.set()
            return
        last = 0
        while not done.is_set() or last < len(samples):
            d = monitor.summary()
            lyap, act, surf = d["lyapunov"], d["actuator"], d["surface"]
            assert lyap["steps"] >= last  # never goes back
            assert lyap["decreased_steps"] <= lyap["evaluated_steps"] < max(lyap["steps"], 1)
            assert 0.0 <= act["saturation_duty"] <= 1.0
            assert act["saturated_steps"] <= act["steps"]
            if surf["abs_max"] is not None:
                assert surf["window_abs_max"] <= surf["abs_max"]
            last = lyap["steps"]
            reads.append(last)

    run_threads(work, 4)
    for s in samples:
        reference.update(*s)
    assert monitor.summary() == reference.summary()
    assert len(reads) > 3


def test_thread_pso_generation_evaluated_in_parallel_is_deterministic() -> None:
    kwargs = dict(particles=6, iterations=2, seed=3, duration_s=1.0)
    lower, upper = [1.5, 12, 30, 5, 15, 3], [2.5, 20, 50, 9, 25, 7]
    one = pso("classical_smc", lower, upper, workers=1, **kwargs)
    many = pso("classical_smc", lower, upper, workers=6, **kwargs)
    assert one == many
    assert one.evaluations == 12 and one.best_cost < 1.0
