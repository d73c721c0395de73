"""Which mappings may be searched: constraints, the mapping space (sampling, neighbours, genomes,
enumeration) and lower bounds."""
