"""Helper processes the benchmarks start (``python -m bench.procs.NAME``): the bare
relay that sets the fan-out ceiling, and a flooding client."""
