"""``python -m bench.report``: bench/report/__init__.py says how to use it."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.report import __doc__ as USAGE
from bench.report.document import keep_blocks, render, splice
from bench.report.results import LATEST, ROOT, load

# ---------------------------------------------------------------------------- formatting


# ---------------------------------------------------------------------------- charts


# ---------------------------------------------------------------------------- sections


def run_pytest(json_path: Path, keyword: str | None, quick: bool, extra: list[str]) -> int:
    cmd = [sys.executable, "-m", "pytest", "bench", f"--benchmark-json={json_path}", "-q"]
    cmd += ["-k", keyword] if keyword else []
    env = dict(os.environ, CHATROOM_BENCH_QUICK="1" if quick else "0")
    print("+", " ".join(cmd[2:]), file=sys.stderr)
    return subprocess.run([*cmd, *extra], cwd=ROOT, env=env, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.report",
        description=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        action="append",
        metavar="FILE",
        help="render these results instead of running (repeatable)",
    )
    parser.add_argument("-k", dest="keyword", help="pytest -k expression")
    parser.add_argument("--quick", action="store_true", help="CHATROOM_BENCH_QUICK=1 sizes")
    parser.add_argument("--out", type=Path, help="markdown file (default docs/benchmarks.md)")
    parser.add_argument(
        "--splice",
        action="store_true",
        help="replace only the sections of the areas measured, keep the rest of the file",
    )
    parser.add_argument("pytest_args", nargs="*", help="after --: more pytest arguments")
    args = parser.parse_args(argv)
    default_dir = ROOT / (".benchmarks/quick" if args.quick else "docs")
    out: Path = args.out or default_dir / "benchmarks.md"
    status = 0
    if args.from_json:
        paths = args.from_json
    else:
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "bench.json"
            status = run_pytest(raw, args.keyword, args.quick, args.pytest_args)
            if not raw.exists():
                print("pytest wrote no results", file=sys.stderr)
                return status or 1
            latest = LATEST.parent / "quick" / LATEST.name if args.quick else LATEST
            latest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(raw, latest)
        paths = [latest]
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = out.read_text() if out.exists() else ""
    if args.splice and previous:
        out.write_text(splice(previous, load(paths), out.parent / "img"))
    else:
        out.write_text(keep_blocks(previous, render(load(paths), out.parent / "img")))
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}", file=sys.stderr)
    if status:
        print(f"some benchmarks failed (pytest exit {status}); rendered the rest", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
