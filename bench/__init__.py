"""pytest-benchmark suites (``bench/test_bench_<area>.py``) and the report generator.

Not collected by a plain ``pytest`` (testpaths is tests/). Run ``python -m bench.report``
(``make bench``) for the full run, docs/benchmarks.md and the charts, or
``CHATROOM_BENCH_QUICK=1 pytest bench --benchmark-disable`` for a seconds-long smoke run.
"""
