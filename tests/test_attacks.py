"""Membership attacks, k-extractability, approximate memorization and the teacher–baseline KL, by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from harness.contract.specs import Evidence
from harness.measure import analysis
from harness.measure.extract import Extraction, extract, extract_pair
from harness_plugins.attacks.loss import loss_score
from harness_plugins.attacks.min_k import lowest_share_mean, min_k_plus_plus_score, min_k_score
from harness_plugins.attacks.reference import reference_score
from harness_plugins.attacks.zlib import zlib_score


def ev(lp, mean=None, std=None, zlib=None, reference=None) -> Evidence:
    lp = torch.tensor(lp, dtype=torch.float64)
    return Evidence(lp, torch.zeros_like(lp) if mean is None else torch.tensor(mean, dtype=torch.float64),
                    torch.ones_like(lp) if std is None else torch.tensor(std, dtype=torch.float64),
                    torch.ones(len(lp), dtype=torch.float64) if zlib is None else torch.tensor(zlib, dtype=torch.float64),
                    reference)


def test_loss_zlib_and_reference_scores_by_hand():
    e = ev([[-1.0, -3.0], [-0.5, -0.5]], zlib=[80.0, 40.0], reference=ev([[-2.0, -2.0], [-1.0, -0.0]]))
    assert loss_score(e, {}).tolist() == [-2.0, -0.5]  # minus the mean loss
    assert zlib_score(e, {}).tolist() == [-2.0 / 80, -0.5 / 40]
    # the reference's losses are 2.0 and 0.5: the second example is no easier for this model than for it
    assert reference_score(e, {}).tolist() == [0.0, 0.0]


def test_min_k_averages_the_least_likely_share_of_tokens():
    lp = [[-0.1, -5.0, -0.2, -4.0, -0.3, -0.1, -0.1, -0.1, -0.1, -0.1]]
    # k = 20% of 10 tokens: the two lowest, -5 and -4
    assert min_k_score(ev(lp), {"k": 0.2}).item() == pytest.approx(-4.5)
    # k = 25% of 10 tokens rounds up to 3: -5, -4, -0.3
    assert lowest_share_mean(torch.tensor(lp), 0.25).item() == pytest.approx(-9.3 / 3)
    # never fewer than one token
    assert lowest_share_mean(torch.tensor([[-1.0, -2.0]]), 0.01).item() == -2.0


def test_min_k_plus_plus_judges_each_token_against_the_models_expectation():
    # Token 1 is unlikely in absolute terms but exactly as likely as the model expects at that position
    # (z = 0); token 2 is likely but far below what the model expected there (z = (-1 - -0.1) / 0.3 = -3).
    e = ev([[-6.0, -1.0]], mean=[[-6.0, -0.1]], std=[[2.0, 0.3]])
    assert min_k_plus_plus_score(e, {"k": 0.5}).item() == pytest.approx(-3.0)
    assert min_k_score(e, {"k": 0.5}).item() == pytest.approx(-6.0)


class Table(torch.nn.Module):
    """A causal LM whose logits at a position depend only on the current token: a lookup table."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = torch.nn.Parameter(table)

    def forward(self, input_ids):
        return type("Out", (), {"logits": self.table[input_ids]})()


def test_extraction_keeps_token_log_probs_and_the_models_own_mean_and_spread():
    torch.manual_seed(0)
    model = Table(torch.randn(7, 7) * 2)
    ids = torch.randint(0, 7, (5, 9))
    got = extract(model, ids, prefix_len=4, suffix_len=5, batch_size=2)
    for r, row in enumerate(ids):
        for t in range(len(row) - 1):
            lp = F.log_softmax(model.table.detach()[row[t]].double(), dim=-1)
            p = lp.exp()
            mean = float((p * lp).sum())
            std = math.sqrt(float((p * (lp - mean) ** 2).sum()))
            assert got.token_logprobs[r, t].item() == pytest.approx(float(lp[row[t + 1]]), abs=1e-5)
            assert got.token_mean[r, t].item() == pytest.approx(mean, abs=1e-5)
            assert got.token_std[r, t].item() == pytest.approx(std, abs=1e-5)
    assert torch.allclose(-got.token_logprobs.mean(1), got.loss, atol=1e-6)


def test_attack_figures_are_named_per_attack_and_role_and_separate_what_they_should():
    from harness_plugins.attacks import loss, reference

    found = {}
    for module in (loss, reference):
        module.register_attacks(lambda a: found.setdefault(a.name, a))
    members = {"student": ev([[-0.1, -0.2]] * 20 + [[-0.3, -0.1]] * 20, reference=ev([[-1.0, -1.0]] * 40))}
    nonmembers = {"student": ev([[-2.0, -2.5]] * 30, reference=ev([[-2.0, -2.5]] * 30))}
    metrics, scores, curves = analysis.attack(found, members, nonmembers, [f"m{i}" for i in range(40)],
                                              [f"n{i}" for i in range(30)])
    assert metrics["auc_loss_student"] == 1.0 and metrics["auc_reference_student"] == 1.0
    assert math.isnan(metrics["tpr_1_loss_student"])  # 30 non-members cannot resolve 1% FPR
    assert {"auc_loss_student_lo", "auc_loss_student_hi", "tpr_1_reference_student_hi"} <= set(metrics)
    assert len(scores["score"]) == 2 * 70 and set(scores["attack"]) == {"loss", "reference"}
    assert set(curves["curve"]) == {"roc:loss", "roc:reference"}


def test_an_attack_that_needs_a_reference_is_skipped_where_there_is_none():
    from harness_plugins.attacks import reference

    found = {}
    reference.register_attacks(lambda a: found.setdefault(a.name, a))
    metrics, scores, _ = analysis.attack(found, {"student": ev([[-1.0]] * 3)}, {"student": ev([[-2.0]] * 3)},
                                         ["a", "b", "c"], ["d", "e", "f"])
    assert metrics == {} and scores["score"] == []


def test_k_extractability_curve_by_hand():
    result = Extraction(memorized=torch.tensor([False, False, True]), match_len=torch.tensor([0, 3, 5]),
                        loss=torch.zeros(3), suffix_loss=torch.zeros(3), ties=torch.zeros(3, dtype=torch.bool))
    curves = analysis.k_extractability({"student": result}, suffix_len=5)
    assert curves["x"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert curves["y"] == pytest.approx([2 / 3, 2 / 3, 2 / 3, 1 / 3, 1 / 3])
    assert set(curves["curve"]) == {"k_extractable"}


def _greedy(model, prompts, new_tokens, batch_size, desc=""):
    """Greedy decoding without a cache, for the lookup-table model (harness.measure.extract.greedy is tested elsewhere)."""
    out = prompts
    for _ in range(new_tokens):
        out = torch.cat([out, model(out).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return out


def test_approximate_memorization_of_a_generated_continuation(monkeypatch):
    monkeypatch.setattr(analysis, "greedy", _greedy)
    # The model continues every token t with t + 1 (mod 10).
    model = Table(torch.eye(10).roll(1, dims=1) * 10)
    exact = torch.arange(8)[None, :]  # 0..7: the continuation of 0..3 is 4..7 exactly
    off = torch.tensor([[0, 1, 2, 3, 9, 5, 6, 7]])  # one wrong token, then the true tokens again
    generated, match, edit = analysis.approximate(model, torch.cat([exact, off]), 4, 4, batch_size=2, desc="t")
    assert generated.tolist() == [[4, 5, 6, 7], [4, 5, 6, 7]]
    assert match.tolist() == [1.0, 0.75]
    assert edit.tolist() == [0.0, 0.25]  # one substitution in four tokens


def test_pair_kl_is_zero_for_the_same_model_and_matches_the_direct_formula():
    torch.manual_seed(1)
    a, b = Table(torch.randn(6, 6)), Table(torch.randn(6, 6))
    ids = torch.randint(0, 6, (3, 5))
    assert extract_pair(a, a, ids, 2, 2, batch_size=2)[2].abs().max().item() < 1e-6
    got = extract_pair(a, b, ids, 2, 2, batch_size=2)[2]
    for r, row in enumerate(ids):
        kls = []
        for t in range(len(row) - 1):
            p, q = F.log_softmax(a.table.detach()[row[t]].double(), -1), F.log_softmax(b.table.detach()[row[t]].double(), -1)
            kls.append(float((p.exp() * (p - q)).sum()))
        assert got[r].item() == pytest.approx(sum(kls) / len(kls), rel=1e-5)


def test_the_pair_pass_gives_each_model_its_own_extraction():
    """Teacher and baseline run side by side on the members: each verdict and score is the one a pass of its own gives."""
    torch.manual_seed(2)
    a, b = Table(torch.randn(7, 7) * 3), Table(torch.randn(7, 7) * 3)
    ids = torch.randint(0, 7, (5, 9))
    first, second, _ = extract_pair(a, b, ids, 4, 5, batch_size=2)
    for pair, alone in ((first, extract(a, ids, 4, 5, batch_size=3)), (second, extract(b, ids, 4, 5, batch_size=3))):
        for name, value in alone.as_dict().items():
            assert torch.equal(value, getattr(pair, name)), name


def test_pair_kl_cuts_padded_embeddings_to_the_shared_width():
    """A teacher padded to more embedding rows than the baseline: only the shared vocabulary counts."""
    torch.manual_seed(3)
    narrow = torch.randn(6, 6)
    wide = torch.cat([narrow, torch.full((6, 2), 4.0)], dim=1)  # two padding rows with large logits
    wide = torch.cat([wide, torch.randn(2, 8)])  # rows for the padded ids too, never looked up
    ids = torch.randint(0, 6, (3, 5))
    kl = extract_pair(Table(wide), Table(narrow), ids, 2, 2, batch_size=2)[2]
    assert kl.abs().max().item() < 1e-6


def test_the_approximate_sample_is_the_same_at_every_call():
    assert analysis.approx_sample(1000, 16).tolist() == analysis.approx_sample(1000, 16).tolist()
    assert analysis.approx_sample(10, 16).tolist() == list(range(10))
    assert analysis.approx_sample(10, 0).tolist() == []
