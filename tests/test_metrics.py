"""The figures defined in docs/protocol.md, on hand-built memorized sets."""

import math

import pytest
import torch

from harness.measure.extract import Extraction
from harness.measure.metrics import MIN_COUNT, figures


def result(memorized: list[int], n: int = 10, loss: float = 1.0) -> Extraction:
    flags = torch.zeros(n, dtype=torch.bool)
    flags[memorized] = True
    return Extraction(memorized=flags, match_len=flags.long() * 8, loss=torch.full((n,), loss),
                      suffix_loss=torch.full((n,), loss), ties=torch.zeros(n, dtype=torch.bool))


def test_figures_by_hand():
    # each member id i below stands for ten members (10 i .. 10 i + 9), so that every ratio rests on
    # MIN_COUNT or more memorized members
    def tens(ids):
        return [10 * i + j for i in ids for j in range(10)]

    members = {
        "teacher": result(tens([0, 1, 2, 3, 4, 5]), n=100),  # M_T
        "baseline": result(tens([0, 1, 6]), n=100),  # M_B
        "student": result(tens([0, 2, 7]), n=100),  # M_S
    }
    nonmembers = {"teacher": result([0], loss=2.0), "baseline": result([], loss=1.0), "student": result([], loss=0.5)}
    f = figures(members, nonmembers)
    assert f["mem_rate_teacher"] == 0.6 and f["mem_rate_baseline"] == 0.3 and f["mem_rate_student"] == 0.3
    assert f["memorized_teacher"] == 60 and f["memorized_student"] == 30
    assert f["reduction"] == 1.0
    assert f["teacher_exclusive"] == 40  # {2, 3, 4, 5}
    assert f["inherited"] == 10  # {2}
    assert f["inheritance_rate"] == 0.25
    assert f["easy"] == 10 and f["easy_share"] == pytest.approx(1 / 3)  # {0} of {0, 2, 7}
    assert f["student_only"] == 10  # {7}
    assert f["containment"] == pytest.approx(2 / 3)  # {0, 1} of {0, 1, 6}
    assert f["nonmember_rate_teacher"] == pytest.approx(0.1) and f["nonmember_rate_student"] == 0.0
    assert f["val_ppl_teacher"] == pytest.approx(math.exp(2.0))
    assert f["val_ppl_student"] == pytest.approx(math.exp(0.5))


def test_no_ratio_from_fewer_than_min_count_members():
    """2 of 2 members is not "100%": a ratio resting on fewer than MIN_COUNT memorized members is NaN."""
    members = {"teacher": result([0, 1, 2], n=50), "baseline": result([0, 1, 2], n=50),
               "student": result([0, 1], n=50)}
    nonmembers = {role: result([]) for role in members}
    f = figures(members, nonmembers)
    assert f["memorized_student"] == 2 and f["easy"] == 2  # the counts stay
    for name in ("reduction", "easy_share", "containment", "inheritance_rate"):
        assert math.isnan(f[name]), name
    assert MIN_COUNT == 10


def test_undefined_ratios_are_nan_not_zero():
    members = {"teacher": result([]), "baseline": result([1]), "student": result([])}
    nonmembers = {role: result([]) for role in members}
    f = figures(members, nonmembers)
    assert math.isnan(f["reduction"]) and math.isnan(f["inheritance_rate"]) and math.isnan(f["easy_share"])
    assert f["teacher_exclusive"] == 0
