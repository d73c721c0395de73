"""What is computed: one layer as a Timeloop problem (:class:`Workload`), networks of layers,
the built-in zoo, and readers of ONNX files, torch modules and Timeloop problem files."""
