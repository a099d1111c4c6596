"""Response propensity per offer type: models trained on the imported contact history (see `service`)."""
