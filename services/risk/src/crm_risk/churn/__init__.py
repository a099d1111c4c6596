"""Churn models: training data (a labelled snapshot, or event histories cut into an observation
and a prediction window), a calibrated gradient-boosting model, its evaluation and fairness
report, and per-customer drivers. `features` and `rules` are pure; `training` holds the plain
top-level functions a spawned worker runs."""
