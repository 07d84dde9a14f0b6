"""Start-up: `harness list` and `harness --help`, with torch imported lazily against eagerly.

The plugins are imported to be listed; if their modules imported torch (as they did before
`harness.lazy`), every listing and every `--help` would pay for it. Both ways run here as fresh
processes on the same machine; each figure is the median of --repeat runs.

    python benchmarks/startup.py [--repeat 7] [--quick]

`--quick` (one run of each) runs the same path in seconds, to check the script, not to measure.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import _quick  # benchmarks/_quick.py: this folder is first on sys.path

LAZY = "from harness.cli import main; main({argv!r})"
# The alternative: what importing the plugins cost when their modules imported torch at the top.
EAGER = "import torch, torch.nn.functional; from harness.cli import main; main({argv!r})"


def wall(code: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if out.returncode not in (0,):
            raise SystemExit(f"failed: {code}\n{out.stderr[-2000:]}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = _quick.options(parser, {"repeat": 1}, "one run of each")
    ratios = []
    for argv in (["list"], ["--help"]):
        lazy = wall(LAZY.format(argv=argv), args.repeat)
        eager = wall(EAGER.format(argv=argv), args.repeat)
        # same output both ways
        a = subprocess.run([sys.executable, "-c", LAZY.format(argv=argv)], capture_output=True, text=True).stdout
        b = subprocess.run([sys.executable, "-c", EAGER.format(argv=argv)], capture_output=True, text=True).stdout
        assert a == b, "the two ways print different listings"
        print(f"harness {' '.join(argv):<7} torch imported eagerly {eager:6.3f}s   lazily (harness) {lazy:6.3f}s")
        ratios.append(eager / lazy)
    print(f"ratio {min(ratios):.2f}x")


if __name__ == "__main__":
    main()
