"""hil: the shared runtime of hil-runtime, in rooms of one job each.

Imports only go down this list (enforced by the import contracts in pyproject.toml):

- ``hil.cli``        the ``hil`` command, one module per subcommand, heavy imports lazily
- ``hil.app``        the process shell: logs, process lifecycle, exit codes
- ``hil.reporting``  merged report, scoring, HTML, history, live status
- ``hil.recording``  the crash-safe recorder, its reader and exporters
- ``hil.config``     the validated config schema (pydantic)
- ``hil.link``       messages, ZeroMQ transport, CURVE security, operator commands
- ``hil.runtime``    the real-time core: schedule, rt hygiene, watchdog, deadline gates,
                     latency, stability, atomics (clock injected; no pydantic, no matplotlib)
- ``hil.dynamics``   pure plant models: numba kernels and frozen params, no I/O

``firmware_protocol`` sits below all of them; ``plant_server`` and ``controller_client``
sit above and never import each other.
"""
