"""Bilingual text classification: the pure training and scoring core (`text`, `training`), the
registry of trained classifiers (`tables`, `repository`, `service`) and the training worker."""
