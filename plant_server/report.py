"""plant.json: what the plant process measured and decided, from its parts' records."""

from __future__ import annotations

import resource
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plant_server.server import PlantServer


def plant_report(server: PlantServer) -> dict[str, Any]:
    guard = server.guard
    stats = server.latency.statistics().to_dict()
    watchdog: dict[str, Any] = guard.watchdog.statistics().to_dict()
    watchdog["events"] = list(guard.watchdog_events)
    intake = server.intake
    first = guard.first_control_ns
    watchdog["first_control_ms"] = None if first is None else (first - server.times.t0_ns) / 1e6
    safety = guard.gates.report()
    safety["deadline_gates"] = guard.scorer.gates.statistics()
    safety.update(guard.latch.report())
    report = {
        "process": "plant",
        "mode": server.settings.mode,
        "rate_hz": 1e9 / server.settings.period_ns,
        "duration_s": server.backend.sim_time_ns * 1e-9,
        "cycles": server.cycles,
        "end_reason": server.end_reason,
        "plant": server.backend.describe(),
        "final_state": server.state.tolist(),
        "latency_us": stats["figures"],
        "deadline": {**stats["deadline"], **guard.scorer.report()},
        "histograms": server.latency.encode(),
        "watchdog": watchdog,
        "safety": safety,
        "session": {"phase": server.session.phase.value,
                    "replacements": server.session.replacements},
        "rejected_messages": server.counters.total,
        "rejected_by_kind": dict(server.counters.rejected_by_kind),
        "rejections_answered": server.answers.report(),
        "controls_applied": intake.applied,
        "controls_late": intake.late,
        "controls_while_safe": intake.while_safe,
        "saturations": guard.gates.saturations,
        "safe_state": guard.latch.safe,
        "safe_reason": guard.latch.reason,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "transport": server.data.report(),
        "observers": dict(server.observers.counts),
        "pushes": server.pushes.report(),
    }
    if server.faults is not None:
        report["faults"] = server.faults.statistics()
    return report
