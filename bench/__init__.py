"""Benchmarks: each measures a path of the platform and its floor in the same run.

`python -m bench` runs them all, `python -m bench <name>` one (`make bench B=<name>`). See
`docs/benchmarks.md` for how they work and the figures measured so far.
"""
