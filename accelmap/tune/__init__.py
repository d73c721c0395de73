"""Validity-aware auto-tuning with measurements: knob spaces, measurers (:data:`MEASURERS`),
tuners (:data:`TUNERS`), validity models, ranking models, logs and the tuning driver."""
