"""What computes it: architectures (Timeloop v0.3/v0.4 files, presets), their numbers as tensors
(:mod:`accelmap.arch.hardware`), the built-in energy/area table, and hardware search spaces."""
