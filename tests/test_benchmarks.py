"""Every script in benchmarks/ runs end to end at its quick setting (`--quick`), and prints what it prints.

The figures in docs/performance.md come from these scripts at their full settings, which take
minutes to hours; `--quick` shrinks each one's work to seconds while running the same code, so a
refactor that breaks a script (a renamed function, a changed result field) fails here instead of
on the next person who reruns it. What a quick run prints is not checked for its values, only for
the lines that say the script got through: its last figure, its table's header, its own checks.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# benchmarks/_quick.py is what the scripts share, not a script
SCRIPTS = sorted(path.name for path in (ROOT / "benchmarks").glob("*.py") if not path.name.startswith("_"))
RATIO = r"^ratio \d+\.\d\dx"  # the last line of most scripts: the alternative's cost over the harness's

# Per script, patterns (re.MULTILINE) that its output must hold once it has run through.
EXPECTED: dict[str, tuple[str, ...]] = {
    "attack_bootstrap.py": (r"^ 512 members vs \d+ non-members: .* figures identical", r"counts by BLOCK_ROWS: ",
                            RATIO),
    "default_run.py": (r"^cold: [\d.]+ s \(budget 300 s\)", r"^cached: [\d.]+ s \(budget 90 s\)", RATIO),
    "dp_cost.py": (r"^soft-kd .* steps of", r"^dp-kd .* steps of", r"^ratio \(dp-kd / soft-kd\): [\d.]+x time per run"),
    "extraction_cost.py": (r"^role\s+examples\s+bare s\s+extract s\s+ratio$", r"^stage at \d+ members", RATIO),
    "extraction_vs_generate.py": (r"^\(a\) one pass", r"^agreement: (\d+)/\1 examples agree", RATIO),
    "flops_bound.py": (r"^stage\s+GFLOP\s+lower bound s", r"^pretrain\s+[\d.]+", r"^protocol\s+[\d.]+", RATIO),
    "gpu_rehearsal.py": (r"^stage\s+params\s+tokens\s+seconds", r"^cached rerun: (\d+) of \1 figures identical",
                         r"^verdicts bf16 decides otherwise than float32: "),
    "kd_loss_memory.py": (r"^loss and gradient agree: yes", r"^ratio [\d.]+x peak memory"),
    "memory.py": (r"^\s+\d+ harness \(streamed\)", r"^\s+\d+ keep log-probs\s+\d", RATIO),
    "preset_sweep.py": (r"^setting\s+method\s+seed", r"^chosen\s+soft-kd\s+0\s+[\d.]+%"),
    "startup.py": (r"^harness list\s+torch imported eagerly", r"^harness --help\s+torch imported eagerly", RATIO),
    "sweep.py": (r"^\[1/2\] tiny / synthetic-pii / hard-kd", r"^every student figure is identical both ways$", RATIO),
    "teacher_logits.py": (r"^teacher logits per batch:", r"^largest difference between the students' weights", RATIO),
}


def test_every_benchmark_has_a_quick_setting():
    """Not slow: a new script without `--quick`, or without a line here, fails in every test run."""
    assert SCRIPTS, "no scripts found in benchmarks/"
    missing = [name for name in SCRIPTS if "_quick.options(" not in (ROOT / "benchmarks" / name).read_text()]
    assert not missing, f"no --quick setting in: {', '.join(missing)}"
    assert sorted(EXPECTED) == SCRIPTS, "EXPECTED names what each script in benchmarks/ must print"


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_quick(script, tmp_path):
    assert script in EXPECTED, f"benchmarks/{script}: say in EXPECTED what its --quick run prints"
    # The autouse fixture's cache and results file, passed on; TMPDIR too, as some scripts keep temporary folders.
    env = {**os.environ, "HARNESS_PROGRESS": "0", "HARNESS_CACHE": str(tmp_path / "cache"),
           "HARNESS_DB": str(tmp_path / "results" / "harness.duckdb"), "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, str(Path("benchmarks") / script), "--quick"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"benchmarks/{script} --quick exited {done.returncode}:\n{done.stderr[-3000:]}"
    for pattern in EXPECTED[script]:
        assert re.search(pattern, done.stdout, re.MULTILINE), (
            f"benchmarks/{script} --quick printed no line matching {pattern!r}:\n{done.stdout[-3000:]}")
