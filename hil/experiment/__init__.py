"""Experiments (docs/experiments.md): the run's reference, its disturbances, its sensors, and
the control metrics of its recording.

- `signals`: signals as pure functions of run time (step, ramp, sine, square, chirp, pulse,
  a csv file's points), packed into one array and evaluated by a numba kernel into a vector
  allocated once (`SignalTable.at`).
- `plan`: the config's `experiment:` section checked against the plant's state and input
  names, and turned into the run's reference (`reference_table`: the equilibrium with the
  referenced states replaced by their signals) and disturbances (`disturbance_table`).
- `sensors`: what the law sees of the state: noise, quantisation, delay, seeded.
- `actuator`: what the simulated plant makes of the control: dead zone, lag, rate limit.
- `metrics`: step metrics as python-control's `step_info` defines them, IAE, ISE, ITAE.

No pydantic at run time (the plan reads the validated config), no plotting, no I/O.
"""
