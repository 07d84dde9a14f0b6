"""DP-SGD students (harness.training.private, methods dp-kd and dp-ft): the epsilon spent is Opacus's
accountant's, every record's gradient is clipped, a member's repeats are one record, with no noise
and no clipping dp-kd trains as soft-kd does, and more than one process is refused."""

from __future__ import annotations

import math

import pytest
import torch
from test_methods import ORDER, ROWS, distiller_for, tiny

from harness.config.registry import Training
from harness.errors import UsageError
from harness.training import private
from harness.training.private import records, train_private
from harness.training.train import train

CFG = Training(epochs=2, lr=1e-3, batch_size=4, warmup_ratio=0.0, weight_decay=0.0, schedule="constant")


def dp(name: str = "dp-kd", teacher=None, **args):
    return distiller_for(name, teacher if teacher is not None else tiny(2, 48, 4), **args)


def test_the_epsilon_spent_is_opacus_accountant_run_by_hand():
    from opacus.accountants import RDPAccountant

    _, spent = train_private(tiny(1), ROWS, ORDER, CFG, seed=0, stage="test", distiller=dp(epsilon=8.0))
    by_hand = RDPAccountant()
    for _ in range(spent.steps):
        by_hand.step(noise_multiplier=spent.noise_multiplier, sample_rate=spent.sample_rate)
    assert spent.epsilon == pytest.approx(by_hand.get_epsilon(spent.delta), rel=1e-9)
    assert spent.epsilon <= 8.0 * 1.01 and spent.noise_multiplier > 0  # the noise was found for the target
    assert spent.records == 12 and spent.sample_rate == pytest.approx(4 / 12)  # 12 members, each repeated 3 times
    assert spent.delta == pytest.approx(1 / 120) and spent.steps == CFG.epochs * 3
    more, _ = spent.noise_multiplier, None
    _, strict = train_private(tiny(1), ROWS, ORDER, CFG, seed=0, stage="test", distiller=dp(epsilon=1.0))
    assert strict.noise_multiplier > more and strict.epsilon <= 1.01


def test_a_members_repeats_are_one_record_unless_asked_otherwise():
    ids, weights = records(ORDER, "member")
    assert ids.tolist() == list(range(12)) and weights.tolist() == [3.0] * 12
    ids, weights = records(ORDER, "occurrence")
    assert len(ids) == 36 and weights.tolist() == [1.0] * 36
    _, spent = train_private(tiny(1), ROWS, ORDER, CFG, seed=0, stage="test",
                             distiller=dp(unit="occurrence", noise_multiplier=1.0))
    assert spent.records == 36 and spent.sample_rate == pytest.approx(4 / 36)


def test_every_records_gradient_is_clipped(monkeypatch):
    """With no noise, the private gradient is the sum of the clipped per-record gradients over the
    expected batch: its norm is at most (records in the batch) x max_grad_norm / batch size."""
    seen = []
    clip = torch.nn.utils.clip_grad_norm_

    def recording(parameters, norm):
        parameters = list(parameters)
        seen.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in parameters])))
        return clip(parameters, norm)

    sizes = []
    for c in (1e-3, 1e9):
        seen.clear()
        distiller = dp(noise_multiplier=0.0, max_grad_norm=c)
        rows_seen = []
        real = distiller.row_losses
        monkeypatch.setattr(distiller, "row_losses",
                            lambda m, i, real=real, seen=rows_seen: seen.append(len(i)) or real(m, i))
        monkeypatch.setattr(private.torch.nn.utils, "clip_grad_norm_", recording)
        train_private(tiny(1), ROWS, ORDER, CFG, seed=0, stage="test", distiller=distiller)
        monkeypatch.setattr(private.torch.nn.utils, "clip_grad_norm_", clip)
        sizes.append((list(seen), rows_seen))
    (clipped, rows), (unclipped, _) = sizes
    assert len(clipped) == len(rows) == CFG.epochs * 3
    for norm, k in zip(clipped, rows):
        assert float(norm) <= k * 1e-3 / CFG.batch_size * (1 + 1e-4)
    assert max(float(n) for n in unclipped) > 100 * max(float(n) for n in clipped)  # the bound bites


def test_with_no_noise_and_no_clipping_dp_kd_trains_as_soft_kd():
    teacher = tiny(2, 48, 4)
    plain = train(tiny(1), ROWS, ORDER, CFG, seed=0, stage="test", distiller=distiller_for("soft-kd", teacher))
    dp_model, spent = train_private(tiny(1), ROWS, ORDER, CFG, seed=0, stage="test",
                                    distiller=dp(teacher=teacher, noise_multiplier=0.0, max_grad_norm=1e9,
                                                 unit="occurrence", sampling="shuffle"))
    assert math.isnan(spent.epsilon)  # shuffled batches: no guarantee is claimed
    for (name, x), (_, y) in zip(plain.state_dict().items(), dp_model.state_dict().items()):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5, msg=name)


def test_dp_ft_reads_nothing_of_the_teacher():
    class NoTeacher(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model, self.config = model, model.config

        def get_output_embeddings(self):
            return self.model.get_output_embeddings()

        def forward(self, **kwargs):
            raise AssertionError("dp-ft asked the teacher")

    model, spent = train_private(tiny(1), ROWS, ORDER, CFG, seed=0, stage="test",
                                 distiller=dp("dp-ft", teacher=NoTeacher(tiny(2, 48, 4))))
    assert math.isfinite(spent.epsilon) and spent.epsilon <= 8.08


def test_a_private_method_is_refused_over_several_processes(quick_registry, monkeypatch):
    from harness.protocol.request import EvalRequest
    from harness.protocol.run import Protocol
    from harness.runtime import processes

    protocol = Protocol(EvalRequest(method="dp-kd", preset="quick", registry=quick_registry))
    monkeypatch.setattr(processes, "world", lambda: 2)
    with pytest.raises(UsageError, match="dp-kd trains with DP-SGD in one process"):
        protocol.run()


@pytest.mark.slow
def test_a_private_run_is_checked_against_its_bound_under_the_board(quick_registry, tmp_path, capsys):
    """End to end: `harness leaderboard` prints the DP row's epsilon, then the loss attack's pooled TPR
    against the bound the run's stored (epsilon, delta) implies (harness.measure.dp_bound)."""
    import duckdb

    from harness.cli import main
    from harness.measure.dp_bound import fpr_upper, max_tpr
    from tests.conftest import quick_args

    db = tmp_path / "dp.duckdb"
    assert main([*quick_args(quick_registry, "dp-kd", "--method-arg", "epsilon=2"), "--db", str(db)]) == 0
    capsys.readouterr()
    assert main(["leaderboard", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    with duckdb.connect(str(db), read_only=True) as con:
        figures = dict(con.execute("SELECT name, value FROM metrics WHERE name LIKE 'dp\\_%' ESCAPE '\\'").fetchall())
    assert 1.5 < figures["dp_epsilon"] <= 2.0 * 1.01 and figures["dp_noise_multiplier"] > 0
    assert "DP-SGD students by epsilon" in out and "The loss attack against the bound" in out
    [row] = [line for line in out.splitlines() if line.startswith("dp-kd epsilon=2") and "%" in line and "50%" in line]
    # 24 non-members allow 10 false positives only at 50% FPR; the bound is taken at that FPR's upper end
    top = fpr_upper(0.5, [24] * 2)
    bound = max_tpr(figures["dp_epsilon"], figures["dp_delta"], top)
    assert f"{100 * bound:.1f}%" in row and f"50% (<= {top:.2%})" in row
    assert ("holds" in row) != ("violated" in row)
