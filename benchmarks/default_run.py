"""Time and peak memory of the embedded default, cold and with the teacher and baseline cached.

    python benchmarks/default_run.py [--quick]

Runs `harness eval --method hard-kd` in a fresh cache and results file (everything trained),
then `harness eval --method soft-kd` on the same cache (teacher and baseline reused), each as
its own process, and prints wall time and peak resident memory against the budgets the
project promises: at most 5 minutes cold, 90 seconds cached, 4 GB. The last line is the ratio
of the cold run's time to the cached one's: what the cache saves a second method. `--quick` runs
the same two processes on a small preset (8 + 8 tokens, 60 pretraining documents, one or two
epochs) and 48 members, in seconds: a check of the script, not of the budgets.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _quick  # benchmarks/_quick.py: this folder is first on sys.path

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = {"cold": 300.0, "cached": 90.0}
MEMORY_BUDGET_GB = 4.0

# --quick: _quick's small preset over the tiny one, and a small synthetic-pii.
QUICK_ARGS = ["--preset", _quick.SMALL, "--dataset-arg", "n_members=48", "--dataset-arg", "n_nonmembers=24"]


def run(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in GB, and stdout of one `harness` process."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"harness {' '.join(args)} failed with status {os.waitstatus_to_exitcode(status)}")
    return seconds, usage.ru_maxrss / 1024**2, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold-method", default="hard-kd")
    parser.add_argument("--cached-method", default="soft-kd")
    opts = _quick.options(parser, {}, "a small preset and 48 members")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HARNESS_CACHE": f"{tmp}/cache", "HARNESS_DB": f"{tmp}/harness.duckdb",
               "HARNESS_PROGRESS": "0"}
        before, after = [], []
        if opts.quick:
            registry = Path(tmp) / "registry.toml"
            registry.write_text((ROOT / "registry.toml").read_text() + _quick.SMALL_PRESET)
            before, after = ["--registry", str(registry)], QUICK_ARGS
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        results = {}
        for label, method in (("cold", opts.cold_method), ("cached", opts.cached_method)):
            seconds, gb, out = run([*before, "eval", "--method", method, *after], env)
            results[label] = seconds
            ok = seconds <= BUDGETS[label] and gb <= MEMORY_BUDGET_GB
            print(f"\n== {label}: harness eval --method {method}")
            print("\n".join(line for line in out.splitlines() if line.strip()))
            print(f"{label}: {seconds:.1f} s (budget {BUDGETS[label]:.0f} s), peak memory {gb:.2f} GB "
                  f"(budget {MEMORY_BUDGET_GB:.0f} GB): {'within budget' if ok else 'OVER BUDGET'}")
    print(f"ratio {results['cold'] / results['cached']:.2f}x")


if __name__ == "__main__":
    main()
