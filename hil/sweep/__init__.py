"""`hil sweep`: laws x plants x experiments x seeds, each a real lockstep `hil run`.

A sweep is a spec (spec.py: a YAML file and/or command-line flags), expanded into one planned
run per combination and checked before anything runs (plan.py: every config loads, every
experiment fits its plant, every law is built for every plant in a probe process), run in
parallel here or on a Dask cluster (runner.py, with a plain-text progress bar: progress.py),
and written as one table (table.py: sweep.csv) and one page ranking the laws (page.py:
sweep.html). Every run is also appended to the run history. docs/experiments.md.
"""
