"""The real-time core: fixed-rate schedule, real-time hygiene (rt), rate limiting, the
latching watchdog, deadline gates, HDR latency monitors, stability metrics and atomics; and
a child process known by its pid (child), which `hil run` and the recorder start.

Pure and clock-injected: nothing here imports pydantic, matplotlib, the link or reporting.
"""
