"""Run the benchmarks and publish them: docs/benchmarks.md and PNG charts in docs/img/.

    python -m bench.report                     # run `pytest bench`, write the docs (make bench)
    python -m bench.report -k registry         # only some benchmarks (-k goes to pytest)
    python -m bench.report -k fanout --splice  # re-measure some, keep the file's other sections
    python -m bench.report --from-json F.json  # re-render saved results, run nothing
    python -m bench.report --quick             # smoke run with tiny sizes, into .benchmarks/quick/
    python -m bench.report -- --benchmark-max-time=0.5   # anything after -- goes to pytest

The raw results are kept in .benchmarks/latest.json (gitignored; quick runs in
.benchmarks/quick/) for --from-json.

The package: results.py reads pytest-benchmark's JSON; fmt.py writes numbers,
tables and charts; one module per area renders its section (registry.py,
fanout.py, storage.py, dialects.py for ``v2`` and ``flood``, cluster.py), each
importing only results.py and fmt.py; document.py puts the sections together
(``SECTIONS``; an area without a module gets generic tables); __main__.py runs
pytest and writes the file. Ratios compare medians within one group, so always
within one run. Conventions for suites are in bench/conftest.py.

Hand-written sections of docs/benchmarks.md survive a regeneration when they sit
between ``<!-- keep: NAME -->`` and ``<!-- /keep: NAME -->`` (see ``keep_blocks``).
"""
