"""What users keep: run directories of map, codesign, sweep and tune, their reports and plots,
and Timeloop files (whole v0.4 specs in, v0.3/v0.4 designs out)."""
