"""How a layer runs on an architecture: mappings (loop tiling, order, spatial unrolling, bypass),
batches of them as tensors, and Timeloop's map.txt loop nests."""
