"""Progress bars on a terminal only: a log file gets the stage lines, not hundreds of redrawn frames."""

from __future__ import annotations

import io

import pytest

from harness.runtime import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("setting", "terminal", "shown"), [
    (None, False, False),  # stderr redirected to a file: no bars
    (None, True, True),    # a terminal: bars
    ("1", False, True),    # asked for
    ("0", True, False),    # turned off
])
def test_bars_show_on_a_terminal_unless_asked_otherwise(monkeypatch, setting, terminal, shown):
    if setting is None:
        monkeypatch.delenv("HARNESS_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("HARNESS_PROGRESS", setting)
    stderr = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    assert progress.enabled() is shown
    with progress.bar(10, "train", "step") as b:
        assert b.disable is not shown
        b.update(10)
    assert ("\r" in stderr.getvalue()) is shown  # a bar's frames, or nothing at all
