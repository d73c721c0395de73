"""What a mapping costs: the batched tensor model and the compiled kernel (Timeloop-exact energy,
cycles, accesses), objectives, invalidity reasons, and evaluation of files."""
