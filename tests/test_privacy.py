"""The privacy analysis through the protocol: attacks, curves, continuations, predictor, seeds, filter, compare."""

from __future__ import annotations

import duckdb
import pytest

from conftest import ROOT, SMALL_DATA, exit_code, preset, quick_args
from harness.cli import main
from harness.measure.metrics import ROLES
from harness.store import connection, read

# Long enough training on 48 members and short examples that students memorize some members and not others:
# what the predictor needs to learn from.
MEMO_PRESET = preset("memo", {"pretrain": (1, 3e-3, 32), "teacher": (12, 5e-3, 8), "baseline": (12, 5e-3, 8),
                              "student": (12, 5e-3, 8)}, length=4, approx_sample=20)


@pytest.fixture
def memo_registry(tmp_path):
    path = tmp_path / "memo.toml"
    path.write_text((ROOT / "registry.toml").read_text() + MEMO_PRESET)
    return path


def memo_args(registry, method: str, *extra: str) -> list[str]:
    return ["--registry", str(registry), "eval", "--method", method, "--preset", "memo", *SMALL_DATA, *extra]


def q(sql: str, params=()):
    import os

    con = duckdb.connect(os.environ["HARNESS_DB"], read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


ATTACKS = {"loss", "zlib", "min-k", "min-k-plus-plus", "reference"}


@pytest.mark.slow
def test_eval_stores_attacks_curves_continuations_and_features(quick_registry, capsys):
    assert main(quick_args(quick_registry, "soft-kd")) == 0
    out = capsys.readouterr().out
    assert "TPR at 1% FPR" in out and "min-k-plus-plus" in out and "generated continuations" in out
    [(run_id,)] = q("SELECT run_id FROM runs")
    # every attack scores every member and non-member for every role
    assert q("SELECT count(*) FROM scores") == [(len(ROLES) * len(ATTACKS) * (48 + 24),)]
    assert {r[0] for r in q("SELECT DISTINCT attack FROM scores")} == ATTACKS
    names = {r[0] for r in q("SELECT name FROM metrics")}
    for attack in ATTACKS:
        for role in ROLES:
            assert {f"auc_{attack}_{role}", f"auc_{attack}_{role}_lo", f"tpr_1_{attack}_{role}",
                    f"tpr_0.1_{attack}_{role}_hi"} <= names
    # the stored loss-attack AUC is the one recomputed from the stored per-example scores
    from sklearn.metrics import roc_auc_score

    rows = q("SELECT s.split, c.score FROM scores c JOIN samples s USING (run_id, role, sample_id) "
             "WHERE c.attack = 'loss' AND c.role = 'student'")
    auc = roc_auc_score([split == "member" for split, _ in rows], [score for _, score in rows])
    assert q("SELECT value FROM metrics WHERE name = 'auc_loss_student'")[0][0] == pytest.approx(auc)
    # k-extractability from the stored verdicts: the share of members with match_len >= k
    for role in ROLES:
        curve = dict(q("SELECT x, y FROM curves WHERE role = ? AND curve = 'k_extractable'", [role]))
        assert sorted(curve) == [float(k) for k in range(1, 9)]
        direct = q("SELECT avg((match_len >= 3)::INTEGER) FROM samples WHERE role = ? AND split = 'member'", [role])
        assert curve[3.0] == pytest.approx(direct[0][0])
        assert len(q("SELECT * FROM curves WHERE role = ? AND curve = 'roc:loss'", [role])) >= 2
    # approximate memorization on the sample (all 48 members: fewer than approx_sample), continuations with text
    assert q("SELECT count(*), count(text) FROM continuations") == [(3 * 48, 3 * 48)]
    assert q("SELECT count(approx_match), count(edit_distance) FROM samples WHERE split = 'member'") == [(144, 144)]
    assert q("SELECT count(approx_match) FROM samples WHERE split = 'nonmember'") == [(0,)]
    # an exactly memorized member has match fraction 1 and edit distance 0
    assert q("SELECT count(*) FROM samples WHERE memorized AND approx_match IS NOT NULL "
             "AND (approx_match < 1 OR edit_distance > 0)") == [(0,)]
    # the predictor's features, one row per member
    rows = q("SELECT teacher_ppl, baseline_ppl, kl_teacher_baseline, zlib_entropy FROM features")
    assert len(rows) == 48 and all(t > 1 and b > 1 and kl >= 0 and z > 0 for t, b, kl, z in rows)
    assert main(["show", run_id]) == 0
    assert "AUC [95%]" in capsys.readouterr().out
    # what the app's ROC tab reads
    import os


    with connection.reading(os.environ["HARNESS_DB"]) as con:
        assert read.stored_attacks(con, run_id) == sorted(ATTACKS)
        roc = read.attack_roc(con, run_id, "zlib")
    assert set(roc["role"]) == set(ROLES) and roc["fpr"].between(0, 1).all()
    stored = q("SELECT value FROM metrics WHERE name = 'auc_zlib_teacher'")[0][0]
    assert (roc[roc["role"] == "teacher"]["auc"] == stored).all()


@pytest.mark.slow
def test_a_named_reference_model_replaces_the_default_references(quick_registry, capsys):
    assert main(quick_args(quick_registry, "soft-kd")) == 0
    [(first, baseline)] = q("SELECT run_id, artifact_path FROM models WHERE role = 'baseline'")
    # the baseline's own checkpoint as the named reference: the baseline's own scores become zero,
    # and every role's reference moves off the default (the student size before fine-tuning)
    assert main(quick_args(quick_registry, "soft-kd", "--reference", baseline)) == 0
    assert "reference model:" in capsys.readouterr().err
    [(second, ref)] = q("SELECT run_id, reference FROM runs WHERE reference IS NOT NULL")
    assert ref == baseline
    for role in ("teacher", "student"):
        scores = dict(q("SELECT run_id, sum(score) FROM scores WHERE attack = 'reference' AND role = ? "
                        "GROUP BY run_id", [role]))
        assert scores[second] != pytest.approx(scores[first])
    assert q("SELECT max(abs(score)) FROM scores WHERE run_id = ? AND attack = 'reference' AND role = 'baseline'",
             [second])[0][0] == pytest.approx(0.0, abs=1e-6)
    hashes = dict(q("SELECT run_id, config_hash FROM runs"))
    assert hashes[first] != hashes[second]


@pytest.mark.slow
def test_seeds_store_intervals_and_the_sets_memorized_at_every_seed(memo_registry, capsys):
    assert main(memo_args(memo_registry, "soft-kd", "--seeds", "2")) == 0
    out = capsys.readouterr().out
    assert "95% interval" in out and "members memorized at every seed" in out
    runs = dict(q("SELECT seed, run_id FROM runs ORDER BY seed"))
    assert sorted(runs) == [0, 1]
    [(group, n)] = q("SELECT group_id, count(*) FROM seed_groups GROUP BY group_id")
    assert n == 2
    values = [v for (v,) in q("SELECT value FROM metrics WHERE name = 'mem_rate_baseline' ORDER BY run_id")]
    [(count, mean, lo, hi)] = q("SELECT n, mean, lo, hi FROM group_metrics WHERE name = 'mem_rate_baseline'")
    assert count == 2 and mean == pytest.approx(sum(values) / 2) and lo <= mean <= hi
    for role in ROLES:
        stored = {s for (s,) in q("SELECT sample_id FROM group_sets WHERE role = ?", [role])}
        every = [{s for (s,) in q("SELECT sample_id FROM samples WHERE run_id = ? AND role = ? AND memorized "
                                  "AND split = 'member'", [run_id, role])} for run_id in runs.values()]
        assert stored == every[0] & every[1]


@pytest.mark.slow
def test_predict_then_filter_then_compare(memo_registry, capsys):
    assert main(memo_args(memo_registry, "soft-kd")) == 0
    [(run_id, mem)] = q("SELECT r.run_id, m.value FROM runs r JOIN metrics m USING (run_id) "
                        "WHERE m.name = 'mem_rate_student'")
    assert 0 < mem < 1, "the memo preset must give a student that memorized some members and not others"
    capsys.readouterr()
    assert main(["predict", run_id]) == 0
    out = capsys.readouterr().out
    assert "AUC" in out and "kl_teacher_baseline" in out and "standardized coefficients" in out
    risk = q("SELECT risk FROM features WHERE run_id = ?", [run_id])
    assert len(risk) == 48 and all(0 <= r <= 1 for (r,) in risk)
    assert q("SELECT count(*) FROM metrics WHERE run_id = ? AND name = 'predict_auc'", [run_id]) == [(1,)]

    # the filtered run finds the unfiltered one, leaves out what its predictor flags, and reports both
    assert main(memo_args(memo_registry, "soft-kd", "--filter", "predicted")) == 0
    out = capsys.readouterr().out
    assert "unfiltered ->" in out
    [(filtered, label, flt)] = q("SELECT run_id, method_label, filter FROM runs WHERE filter IS NOT NULL")
    assert label == "soft-kd [filter: predicted]" and run_id in flt
    flagged = q("SELECT count(*) FROM features WHERE run_id = ? AND risk >= 0.5", [run_id])[0][0]
    removed = q("SELECT value FROM metrics WHERE run_id = ? AND name = 'filter_removed'", [filtered])[0][0]
    assert removed == flagged
    assert q("SELECT count(*) FROM runs WHERE status = 'finished'") == [(2,)]  # no second unfiltered run

    assert main(memo_args(memo_registry, "hard-kd")) == 0
    capsys.readouterr()
    assert main(["compare", "--methods", "soft-kd,hard-kd"]) == 0
    out = capsys.readouterr().out
    assert "inherits" in out and "in common" in out
    inherited = dict(q("SELECT r.method, m.value FROM runs r JOIN metrics m USING (run_id) "
                       "WHERE m.name = 'inherited' AND r.filter IS NULL"))
    if inherited["soft-kd"]:
        assert f"{inherited['hard-kd'] / inherited['soft-kd']:.2f}x" in out


@pytest.mark.slow
def test_filter_without_an_unfiltered_run_runs_it_first(memo_registry, capsys):
    rc = main(memo_args(memo_registry, "soft-kd", "--filter", "predicted", "--limit", "24"))
    runs = q("SELECT filter IS NULL, status FROM runs ORDER BY started_at")
    assert runs[0] == (True, "finished")  # the source run came first, and landed
    if rc == 2:  # its student memorized too few of 24 members to learn from: said so, nothing else started
        assert "the predictor needs at least" in capsys.readouterr().err and len(runs) == 1
    else:
        assert rc == 0 and runs[1] == (False, "finished")


@pytest.mark.parametrize("argv, message", [
    (["--filter", "predictd"], "did you mean 'predicted'"),
    (["--seeds", "0"], "argument --seeds: must be between 1 and 1000, got 0"),
    (["--reference", "no-such-org/no-such-model"],
     "--reference: no-such-org/no-such-model is not in the Hugging Face cache"),
    (["--reference", "."], "cannot load reference model ."),
])
def test_bad_privacy_arguments_are_one_line_errors(quick_registry, capsys, argv, message):
    rc = exit_code(quick_args(quick_registry, "soft-kd", *argv))
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1


@pytest.mark.slow
def test_compare_and_predict_errors(quick_registry, capsys):
    assert exit_code(["compare", "--methods", "soft-kd"]) == 2
    assert "argument --methods: needs two or more different methods" in capsys.readouterr().err
    assert exit_code(["compare", "--methods", "soft-kd,hard-kd", "--seeds", "0,x"]) == 2
    assert "argument --seeds: expected comma-separated integers" in capsys.readouterr().err
    assert main(quick_args(quick_registry, "soft-kd")) == 0
    capsys.readouterr()
    assert main(["compare", "--methods", "soft-kd,hard-kd"]) == 2
    assert "no finished hard-kd run" in capsys.readouterr().err
    assert main(["predict", "latest"]) == 2  # the quick student memorizes too few members to learn from
    assert "the predictor needs at least" in capsys.readouterr().err
