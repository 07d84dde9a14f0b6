"""The one logger: `harness: message` on stderr, warnings only on a non-main process."""

from __future__ import annotations

import logging

from harness.runtime import log


def test_main_process_says_progress_and_warnings(monkeypatch, capsys):
    monkeypatch.delenv("RANK", raising=False)
    log.info("teacher: trained")
    log.warning("skipping plugin 'x': broken")
    assert capsys.readouterr().err == "harness: teacher: trained\nharness: warning: skipping plugin 'x': broken\n"


def test_other_processes_say_only_warnings(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "1")
    log.info("teacher: trained")
    log.warning("skipping plugin 'x': broken")
    assert capsys.readouterr().err == "harness: warning: skipping plugin 'x': broken\n"


def test_set_up_once_however_often_it_is_called(monkeypatch, capsys):
    monkeypatch.delenv("RANK", raising=False)
    for _ in range(3):
        log.setup()
    logging.getLogger("harness").info("once")
    assert capsys.readouterr().err == "harness: once\n"
