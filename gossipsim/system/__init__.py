"""The simulated system: topology, timing, quantizers, faults, random streams, metrics."""
