"""Tools a person runs by hand around the benchmarks (``python -m bench.tools.NAME``):
the server profiler behind the before/after figures of docs/benchmarks.md."""
