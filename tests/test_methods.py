"""The built-in KD methods: their losses by hand, what they may see of the teacher, and each one
end to end through the protocol on the tiny family."""

from __future__ import annotations

import math

import duckdb
import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from conftest import ROOT, quick_args
from harness.cli import main
from harness.config import plugins, registry
from harness.config.registry import Training
from harness.contract.specs import LogitBatch, TopKBatch, resolve_params
from harness.errors import RunFailed
from harness.protocol import provenance
from harness.runtime import processes
from harness.runtime.cache import Cache
from harness.training import distill as distill_mod
from harness.training.distill import Distiller, choose_tier
from harness.training.train import train

FOUND = plugins.load(registry.load(ROOT / "registry.toml"))
ALL_METHODS = sorted(FOUND.methods)
EXPECTED = {"soft-kd", "hard-kd", "reverse-kl", "jsd", "tvd", "skew-kl", "skew-rkl", "gkd", "imitkd", "minillm",
            "hidden-mse", "topk-kd", "rs-kd"}

# The worked point of tests/test_divergences.py: teacher p = (1/4, 3/4), student q = (1/2, 1/2).
P, Q = (0.25, 0.75), (0.5, 0.5)
TEACHER = torch.tensor([[[0.0, math.log(3)]]])
STUDENT = torch.tensor([[[0.0, 0.0]]])
LABELS = torch.tensor([[1]])


def kl(a, b):
    return sum(x * math.log(x / y) for x, y in zip(a, b))


def method_loss(name: str, batch, **args):
    method = FOUND.method(name)
    return method.loss(batch, resolve_params(method.params, args, name)).item()


def test_every_method_of_the_study_is_registered():
    assert EXPECTED <= set(FOUND.methods)
    assert FOUND.method("seqkd") is FOUND.methods["hard-kd"]


def test_every_method_declares_what_it_reads_of_the_teacher():
    access = {name: FOUND.methods[name].teacher_access for name in EXPECTED}
    assert access["hard-kd"] == "text"
    assert access["topk-kd"] == "top-k logits"
    assert access["hidden-mse"] == "hidden states"
    assert {n for n, a in access.items() if a == "logits"} == EXPECTED - {"hard-kd", "topk-kd", "hidden-mse"}
    assert {n for n in EXPECTED if FOUND.methods[n].on_policy} == {"gkd", "imitkd", "minillm"}


@pytest.mark.parametrize("name, args, expected", [
    # soft KD at T: KL of the softened distributions times T^2; at T = 1 plain KL(p || q).
    ("soft-kd", {"temperature": 1.0}, kl(P, Q)),
    ("soft-kd", {"temperature": 1.0, "ce_weight": 0.5}, 0.5 * kl(P, Q) + 0.5 * -math.log(0.5)),
    ("reverse-kl", {}, kl(Q, P)),
    ("reverse-kl", {"temperature": 2.0},
     4 * kl(Q, (1 / (1 + math.sqrt(3)), math.sqrt(3) / (1 + math.sqrt(3))))),
    ("jsd", {"beta": 0.5}, 0.5 * kl(P, (0.375, 0.625)) + 0.5 * kl(Q, (0.375, 0.625))),
    ("tvd", {}, 0.25),
    ("skew-kl", {"alpha": 0.1}, kl(P, (0.475, 0.525))),
    ("skew-rkl", {"alpha": 0.1}, kl(Q, (0.275, 0.725))),
])
def test_logit_method_loss_by_hand(name, args, expected):
    assert method_loss(name, LogitBatch(STUDENT, TEACHER, LABELS), **args) == pytest.approx(expected, rel=1e-5)


def test_topk_kd_loss_by_hand():
    # Teacher p = (0.5, 0.3, 0.2) over 3 tokens, K = 2: renormalised (5/8, 3/8); the student is uniform.
    teacher = torch.log(torch.tensor([[[0.5, 0.3, 0.2]]]))
    values, indices = teacher.topk(2, dim=-1)
    batch = TopKBatch(torch.zeros(1, 1, 3), values, indices, LABELS)
    expected = 5 / 8 * math.log((5 / 8) / (1 / 3)) + 3 / 8 * math.log((3 / 8) / (1 / 3))
    assert method_loss("topk-kd", batch, k=2, temperature=1.0) == pytest.approx(expected, rel=1e-5)


def test_rs_kd_loss_by_hand():
    # A teacher sure of token 0 puts every draw there: the target is (1, 0), and against the student
    # q = (1/4, 3/4) the loss is -log q(0) = log 4, whatever k.
    sure = torch.tensor([[[0.0, -1e9]]])
    student = torch.tensor([[[0.0, math.log(3)]]])
    for k in (1, 7):
        assert method_loss("rs-kd", LogitBatch(student, sure, LABELS), k=k) == pytest.approx(math.log(4), rel=1e-6)


def test_rs_kd_is_unbiased_where_renormalised_top_k_is_not():
    """Over many positions the sampled loss averages to the full cross-entropy H(p, q), and its gradient
    to forward KL's, q - p; top-K renormalised over K = 1 of p = (1/4, 3/4) teaches (0, 1) instead."""
    n = 20_000
    teacher = TEACHER.expand(1, n, 2)  # p = (1/4, 3/4) at every position
    student = torch.tensor([0.0, 2.0]).expand(1, n, 2).clone().requires_grad_()
    q = torch.softmax(torch.tensor([0.0, 2.0]), -1)
    torch.manual_seed(0)
    method = FOUND.method("rs-kd")
    loss = method.loss(LogitBatch(student, teacher, LABELS.expand(1, n)), resolve_params(method.params, {"k": 4}, "rs-kd"))
    cross_entropy = -(P[0] * math.log(q[0]) + P[1] * math.log(q[1]))
    assert loss.item() == pytest.approx(cross_entropy, rel=0.01)
    loss.backward()
    mean_grad = student.grad.sum(dim=(0, 1))  # d(mean loss)/d logits, summed over the n positions
    torch.testing.assert_close(mean_grad, q - torch.tensor(P), atol=0.01, rtol=0)
    values, indices = TEACHER.topk(1, dim=-1)
    biased = method_loss("topk-kd", TopKBatch(torch.tensor([[[0.0, 2.0]]]), values, indices, LABELS), k=1,
                         temperature=1.0)
    assert biased == pytest.approx(-math.log(q[1]), rel=1e-5)  # the tail's 1/4 is gone from the target


def test_minillm_advantages_are_scaled_clipped_and_whitened():
    from harness_plugins.methods.minillm import REWARD_CLIP, REWARD_SCALING, advantages, future_mean

    rewards = torch.tensor([[1.0, 2.0, 3.0, 6.0], [0.0, -1.0, 4.0, 2.0]], dtype=torch.float64)
    raw = advantages(rewards, normalise=False)
    torch.testing.assert_close(raw, future_mean(rewards / REWARD_SCALING))  # rewards / 0.5, as LMOps scales them
    assert advantages(torch.full((1, 3), -1e6, dtype=torch.float64), normalise=False)[0, 0] == -REWARD_CLIP
    white = advantages(rewards, normalise=True)
    assert white[:, -1].tolist() == [0.0, 0.0]  # the last token has no future: its term is the exact one
    assert white[:, :-1].mean().item() == pytest.approx(0.0, abs=1e-12)
    assert white[:, :-1].std().item() == pytest.approx(1.0, rel=1e-6)
    # whitening is a shift and a scale of the same advantages: their order is kept
    assert torch.equal(white[:, :-1].flatten().argsort(), raw[:, :-1].flatten().argsort())


def test_minillm_future_reward_is_the_mean_of_the_rewards_after_each_token():
    from harness_plugins.methods.minillm import future_mean

    rewards = torch.tensor([[1.0, 2.0, 3.0, 6.0]], dtype=torch.float64)
    assert future_mean(rewards)[0].tolist() == pytest.approx([(2 + 3 + 6) / 3, (3 + 6) / 2, 6.0, 0.0])


# ---------------------------------------------------------------- what the distiller hands over


def tiny(seed: int, hidden: int = 32, layers: int = 2, vocab: int = 40):
    torch.manual_seed(seed)
    return GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                                            num_attention_heads=4, intermediate_size=2 * hidden,
                                            max_position_embeddings=32))


ROWS = torch.randint(0, 40, (12, 10), generator=torch.Generator().manual_seed(0))
ORDER = torch.arange(12).repeat(3)  # every row three times, as repeated members are
CFG = Training(epochs=2, lr=1e-3, batch_size=4, warmup_ratio=0.0, weight_decay=0.0, schedule="constant")


class CountingTeacher(torch.nn.Module):
    """The teacher, counting how many rows it is asked about."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config, self.rows_seen = model, model.config, 0

    def get_output_embeddings(self):
        return self.model.get_output_embeddings()

    def forward(self, input_ids, **kwargs):
        self.rows_seen += len(input_ids)
        return self.model(input_ids=input_ids, **kwargs)


def distiller_for(name: str, teacher, precompute=None, budget=None, cache=None, **args):
    method = FOUND.method(name)
    params = resolve_params(method.params, args, name)
    return Distiller(method, params, teacher, ROWS, prefix_len=4, batch_size=4, stage="test", seed=0,
                     layer_map=lambda s, t: ((1, 2), (2, 4)), precompute_teacher=precompute,
                     teacher_budget=budget, cache=cache, teacher_key=None if cache is None else "teacher-key",
                     corpus=lambda: CORPUS)


def distill(name: str, teacher, precompute=None, budget=None, cache=None, **args):
    distiller = distiller_for(name, teacher, precompute, budget, cache, **args)
    student = train(tiny(1), ROWS, ORDER, CFG, seed=0, stage="test", distiller=distiller)
    return student, distiller


def test_training_keeps_each_epochs_mean_loss_and_a_cached_curve_is_read_by_value():
    curve: list[float] = []
    train(tiny(1), ROWS, ORDER, Training(**{**CFG.__dict__, "epochs": 3}), seed=0, stage="test", epoch_loss=curve)
    assert len(curve) == 3 and all(math.isfinite(v) for v in curve)
    assert curve[0] > curve[1] > curve[2]  # cross-entropy on rows seen three times an epoch falls
    assert curve[0] < math.log(40) + 0.5  # a mean of per-batch losses, not a sum
    assert provenance.curve(curve) == tuple(curve)
    for hostile in ([1.0, "2"], [float("nan")], [True], {"a": 1}, [0.0] * 10_001, None):
        assert provenance.curve(hostile) == ()


@pytest.mark.parametrize("name, args", [("soft-kd", {}), ("gkd", {"lmbda": 0.0})])
def test_teacher_logits_are_computed_once_per_distinct_row(name, args):
    once = CountingTeacher(tiny(2, 48, 4))
    distill(name, once, **args)
    assert once.rows_seen == len(ROWS)
    every_batch = CountingTeacher(tiny(2, 48, 4))
    distill(name, every_batch, precompute=False, **args)
    assert every_batch.rows_seen == len(ORDER) * CFG.epochs


def test_precomputed_and_per_batch_teacher_logits_train_the_same_student():
    a, _ = distill("soft-kd", tiny(2, 48, 4), precompute=True)
    b, _ = distill("soft-kd", tiny(2, 48, 4), precompute=False)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(x, y, msg=name)


def test_topk_method_sees_only_the_teachers_top_k():
    seen = []
    method = FOUND.method("topk-kd")
    teacher = tiny(2, 48, 4).eval()
    params = resolve_params(method.params, {"k": 5}, "topk-kd")
    distiller = Distiller(method, params, teacher, ROWS, prefix_len=4, batch_size=4, stage="test", seed=0)
    original = method.loss
    object.__setattr__(method, "loss", lambda batch, a: (seen.append(batch), original(batch, a))[1])
    try:
        distiller.loss(tiny(1), torch.tensor([3, 7]), 0, 1)
    finally:
        object.__setattr__(method, "loss", original)
    (batch,) = seen
    assert isinstance(batch, TopKBatch) and not hasattr(batch, "teacher_logits")
    with torch.no_grad():
        full = teacher(input_ids=ROWS[[3, 7]]).logits[:, :-1]
    values, indices = full.topk(5, dim=-1)
    torch.testing.assert_close(batch.teacher_values, values)
    assert torch.equal(batch.teacher_indices, indices)


# 12 rows of 10 tokens: 108 positions. Top-5 logits take 108 * 5 * (4 + 4) = 4320 bytes with
# float32 values, 3240 with float16 ones; the full 40-wide float32 logits take 17280.
FP16_ONLY = 4000


def all_outputs(distiller):
    distiller.bind(tiny(1))
    return distiller.outputs[torch.arange(len(ROWS))]


def test_top_k_values_kept_in_float16_when_float32_does_not_fit_give_the_float32_loss():
    teacher = tiny(2, 48, 4)
    full = distiller_for("topk-kd", teacher, k=5)
    half = distiller_for("topk-kd", teacher, budget=FP16_ONLY, k=5)
    assert (full.outputs.tier.name, full.outputs.values_dtype) == ("memory", torch.float32)
    assert (half.outputs.tier.name, half.outputs.values_dtype) == ("memory", torch.float16)
    a, b = all_outputs(full), all_outputs(half)
    stored = sum(t.numel() * t.element_size() for t in half.outputs._all)
    assert [t.dtype for t in half.outputs._all] == [torch.float16, torch.int32] and stored == 3240 <= FP16_ONLY
    assert torch.equal(a[1], b[1])
    torch.testing.assert_close(a[0], b[0], rtol=1e-3, atol=1e-3)
    index, student = torch.tensor([3, 7, 1]), tiny(1)
    torch.testing.assert_close(full.loss(student, index, 0, 1), half.loss(student, index, 0, 1), rtol=1e-3, atol=1e-4)


def test_the_memory_budget_is_read_when_a_distiller_is_made(monkeypatch):
    monkeypatch.setenv("HARNESS_TEACHER_LOGITS_BYTES", "0")
    assert distiller_for("soft-kd", tiny(2, 48, 4)).outputs.tier.name == "batch"  # no cache to stream from
    monkeypatch.setenv("HARNESS_TEACHER_LOGITS_BYTES", str(FP16_ONLY))
    assert distiller_for("topk-kd", tiny(2, 48, 4), k=5).outputs.values_dtype == torch.float16


@pytest.mark.parametrize("name, args", [("soft-kd", {}), ("topk-kd", {"k": 5})])
def test_streamed_teacher_outputs_are_the_in_memory_ones(tmp_path, name, args):
    """Full logits stay float32 on disk, so the student is bit for bit the in-memory one."""
    teacher = tiny(2, 48, 4)
    streamed = distiller_for(name, teacher, budget=0, cache=Cache(tmp_path), **args)
    in_memory = distiller_for(name, teacher, budget=FP16_ONLY if args else None, **args)
    assert streamed.outputs.tier.name == "disk" and in_memory.outputs.tier.name == "memory"
    for x, y in zip(all_outputs(streamed), all_outputs(in_memory), strict=True):
        assert x.dtype == y.dtype and torch.equal(x, y)
    if name == "soft-kd":
        a, _ = distill(name, tiny(2, 48, 4), budget=0, cache=Cache(tmp_path))
        b, _ = distill(name, tiny(2, 48, 4))
        for (key, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(x, y), key


def test_the_flagship_tiers_say_what_they_do_instead_of_writing_52_tb():
    """1M members x 255 positions x Pythia 12b's 50688-wide float32 logits: far past any disk."""
    full = choose_tier(1_000_000, 255, 50_688, None, memory=2 << 30, disk=10 * 10**12)
    assert full.name == "batch" and full.bytes == 0
    assert "51.7 TB" in full.why and "disk budget of 10.0 TB" in full.why  # 1M x 255 x 50688 x 4 bytes
    top_k = choose_tier(1_000_000, 255, 50_688, 50, memory=2 << 30, disk=10 * 10**12)
    assert (top_k.name, top_k.values, top_k.bytes) == ("disk", torch.float16, 1_000_000 * 255 * 50 * 6)


def test_teacher_outputs_that_do_not_fit_the_disk_are_recomputed_per_batch(tmp_path, monkeypatch):
    """A faked small disk: the run takes the per-batch fallback and writes nothing; the student is
    the one trained from outputs kept in memory."""
    monkeypatch.setattr(distill_mod, "free_disk", lambda path: 10_000)  # 17280 bytes of logits would not fit
    cache = Cache(tmp_path)
    small, distiller = distill("soft-kd", tiny(2, 48, 4), budget=0, cache=cache)
    assert distiller.outputs.tier.name == "batch" and "disk budget of 5 KB" in distiller.outputs.tier.why
    assert not (tmp_path / "teacher-outputs").exists()
    reference, _ = distill("soft-kd", tiny(2, 48, 4))
    for (name, x), (_, y) in zip(small.state_dict().items(), reference.state_dict().items()):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6, msg=name)
    monkeypatch.setattr(distill_mod, "free_disk", lambda path: 1 << 40)
    monkeypatch.setenv("HARNESS_TEACHER_DISK_BYTES", "17279")  # the user's budget, one byte short
    assert distiller_for("soft-kd", tiny(2, 48, 4), budget=0, cache=cache).outputs.tier.name == "batch"
    monkeypatch.setenv("HARNESS_TEACHER_DISK_BYTES", "17280")
    assert distiller_for("soft-kd", tiny(2, 48, 4), budget=0, cache=cache).outputs.tier.name == "disk"


def test_a_disk_that_fills_before_the_write_stops_it_before_it_starts(tmp_path, monkeypatch):
    cache = Cache(tmp_path)
    distiller = distiller_for("soft-kd", tiny(2, 48, 4), budget=0, cache=cache)
    assert distiller.outputs.tier.name == "disk"
    monkeypatch.setattr(distill_mod, "free_disk", lambda path: 100)
    distiller.bind(tiny(1))
    with pytest.raises(RunFailed, match=r"need 17 KB on disk but 0 KB is free"):
        distiller.outputs[torch.arange(2)]
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # nothing written, not even a temporary folder


def test_a_second_method_loads_the_streamed_teacher_logits_instead_of_computing_them(tmp_path, monkeypatch):
    cache, entered = Cache(tmp_path), []
    main_first = processes.main_first
    monkeypatch.setattr(processes, "main_first", lambda: (entered.append(1), main_first())[1])
    first = CountingTeacher(tiny(2, 48, 4))
    distill("soft-kd", first, budget=0, cache=cache)
    assert first.rows_seen == len(ROWS) and entered == [1]
    (artifact,) = (tmp_path / "teacher-outputs").iterdir()
    second = CountingTeacher(tiny(2, 48, 4))
    distill("reverse-kl", second, budget=0, cache=cache)
    assert second.rows_seen == 0 and entered == [1, 1]
    other = CountingTeacher(tiny(2, 48, 4))  # top-K outputs are another artifact
    distill("topk-kd", other, budget=0, cache=cache, k=5)
    assert other.rows_seen == len(ROWS) and len(list((tmp_path / "teacher-outputs").iterdir())) == 2
    assert cache.get("teacher-outputs", artifact.name) == artifact


def test_a_corrupt_or_half_written_teacher_logits_artifact_is_never_used(tmp_path, monkeypatch):
    cache, teacher = Cache(tmp_path), tiny(2, 48, 4)
    expected = all_outputs(distiller_for("soft-kd", teacher))
    # A writer that dies half way leaves nothing: the next one computes every row.
    dying = distiller_for("soft-kd", CountingTeacher(teacher), budget=0, cache=cache)
    compute = dying.outputs._compute
    monkeypatch.setattr(dying.outputs, "_compute",
                        lambda ids: compute(ids) if dying.outputs.teacher.rows_seen < 8 else 1 / 0)
    with pytest.raises(ZeroDivisionError):
        all_outputs(dying)
    assert list((tmp_path / "teacher-outputs").iterdir()) == []
    fresh = distiller_for("soft-kd", CountingTeacher(teacher), budget=0, cache=cache)
    assert torch.equal(all_outputs(fresh)[0], expected[0]) and fresh.outputs.teacher.rows_seen == len(ROWS)
    # A file changed on disk fails its checksum: it is rebuilt, not read.
    (logits,) = (tmp_path / "teacher-outputs").glob("*/logits.npy")
    with open(logits, "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x00\x80\x7f")  # the last logit becomes inf
    again = distiller_for("soft-kd", CountingTeacher(teacher), budget=0, cache=cache)
    assert torch.equal(all_outputs(again)[0], expected[0]) and again.outputs.teacher.rows_seen == len(ROWS)


def test_hidden_mse_trains_its_projections_and_the_student_keeps_none():
    teacher = tiny(2, 48, 4)
    student, distiller = distill("hidden-mse", teacher)
    assert distiller.layer_map == ((1, 2), (2, 4))
    projections = distiller.modules
    assert [tuple(p.weight.shape) for p in projections] == [(48, 32), (48, 32)]
    torch.manual_seed(0)
    fresh = torch.nn.Linear(32, 48)
    assert not torch.equal(projections[0].weight.detach(), fresh.weight)  # moved from its initial values
    assert set(student.state_dict()) == set(tiny(1).state_dict())


@pytest.mark.parametrize("name", ["soft-kd", "topk-kd", "minillm"])
def test_a_teacher_with_wider_padded_embeddings_is_cut_to_the_shared_vocabulary(name):
    """Pythia 12b pads its embeddings to 50688 and 1.4b to 50304: the same tokenizer, other widths."""
    student, distiller = distill(name, tiny(2, 48, 4, vocab=56))
    assert distiller.width == 40
    assert all(torch.isfinite(p).all() for p in student.parameters())


@pytest.mark.parametrize("name", ["gkd", "imitkd", "minillm"])
def test_on_policy_methods_are_reproducible_at_a_seed(name):
    a, _ = distill(name, tiny(2, 48, 4))
    b, _ = distill(name, tiny(2, 48, 4))
    for (key, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(x, y, msg=key)


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def every_method_run(tmp_path_factory):
    """Each built-in method through `harness eval` on the tiny family, sharing one cache and one DB."""
    root = tmp_path_factory.mktemp("methods")
    from conftest import write_quick_registry

    registry_path = write_quick_registry(root)
    db = root / "harness.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_CACHE", str(root / "cache"))
        mp.setenv("HARNESS_DB", str(db))
        mp.setenv("HARNESS_PROGRESS", "0")
        codes = {m: main(quick_args(registry_path, m, "--dataset-arg", "n_members=24",
                                    "--dataset-arg", "n_nonmembers=8")) for m in ALL_METHODS}
    return codes, db, registry_path


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_method_trains_a_student_and_lands_its_figures(every_method_run, name):
    codes, db, _ = every_method_run
    assert codes[name] == 0
    with duckdb.connect(str(db), read_only=True) as con:
        run_id, status, access = con.execute(
            "SELECT run_id, status, teacher_access FROM runs WHERE method = ?", [name]).fetchone()
        assert status == "finished" and access == FOUND.methods[name].teacher_access
        figures = dict(con.execute("SELECT name, value FROM metrics WHERE run_id = ?", [run_id]).fetchall())
        students = con.execute("SELECT count(*) FROM samples WHERE run_id = ? AND role = 'student'",
                               [run_id]).fetchone()[0]
        cached = con.execute("SELECT role, cached FROM models WHERE run_id = ?", [run_id]).fetchall()
    assert 0.0 <= figures["mem_rate_student"] <= 1.0
    assert math.isfinite(figures["val_ppl_student"]) and figures["val_ppl_student"] > 1
    assert students == 24 + 8
    assert dict(cached)["student"] is False


@pytest.mark.slow
def test_leaderboard_lists_every_method(every_method_run, capsys):
    _, db, registry_path = every_method_run
    capsys.readouterr()
    assert main(["--registry", str(registry_path), "leaderboard", "--db", str(db)]) == 0
    board = capsys.readouterr().out
    rows = [line.split() for line in board.splitlines() if line[:1] in "0123456789=-" and len(line.split()) > 1]
    listed = [r[2] for r in rows if r[2] in ALL_METHODS]  # ranked, or after the baseline with the reason
    assert sorted(listed) == ALL_METHODS
    unranked = [" ".join(r) for r in rows if r[2] in ALL_METHODS and r[0] == "-"]
    # each unranked one says why: outside the band, or another recipe or data exposure than the KD methods'
    assert all(any(w in r for w in ("perplexity", "loss", "recipe", "(deduplicated)")) for r in unranked), unranked
    assert "top-k logits" in board and "hidden states" in board


# ---------------------------------------------------------------- MiniLLM's language-modelling term

CORPUS = torch.randint(0, 40, (30, 10), generator=torch.Generator().manual_seed(7))


def minillm_loss(rows: torch.Tensor, **args) -> torch.Tensor:
    """One MiniLLM step's loss on `rows`, from a fresh distiller and student (the same coin flips)."""
    method = FOUND.method("minillm")
    distiller = Distiller(method, resolve_params(method.params, args, "minillm"), tiny(2, 48, 4), rows,
                          prefix_len=4, batch_size=4, stage="test", seed=0, corpus=lambda: CORPUS)
    student = tiny(1)
    distiller.bind(student)
    return distiller.loss(student, torch.arange(4), 0, 10)


def test_minillm_never_reads_a_members_continuation_unless_asked():
    """Gu et al.'s LM term reads the pretraining corpus: members are only prompts, so changing every
    member's tokens after the prompt leaves the loss exactly as it was (with kd_ratio 0 or not)."""
    altered = ROWS.clone()
    altered[:, 4:] = (altered[:, 4:] + 1) % 40
    for args in ({}, {"kd_ratio": 0.0}, {"kd_ratio": 1.0, "lm_coef": 3.0}):
        assert torch.equal(minillm_loss(ROWS, **args), minillm_loss(altered, **args)), args
    # the departure, when asked for: cross-entropy on the members themselves
    assert not torch.equal(minillm_loss(ROWS, lm_data="members"), minillm_loss(altered, lm_data="members"))


def test_minillm_lm_term_is_cross_entropy_on_corpus_rows_weighted_by_lm_coef():
    """loss(lm_coef=c) - loss(lm_coef=0) is c times the corpus term, whatever c: the term is linear in it."""
    base = minillm_loss(ROWS, lm_coef=0.0, kd_ratio=0.0)
    one = minillm_loss(ROWS, lm_coef=1.0, kd_ratio=0.0) - base
    three = minillm_loss(ROWS, lm_coef=3.0, kd_ratio=0.0) - base
    torch.testing.assert_close(three, 3 * one)
    assert 2.5 < one.item() < 5.0  # cross-entropy of an untrained 40-token model: about log(40) = 3.7


# ---------------------------------------------------------------- a method's own student recipe

RECIPE_PLUGIN = '''
from harness import KDMethod, hookimpl
from harness_plugins.methods.soft_kd import soft_kd_loss


@hookimpl
def register_kd_methods(register):
    register(KDMethod(name="slow-kd", description="soft KD on a recipe of its own", teacher_access="logits",
                      loss=soft_kd_loss, training={"lr_scale": 0.1, "epochs": 2}))
'''


@pytest.fixture
def recipe_registry(tmp_path):
    (tmp_path / "slow_kd.py").write_text(RECIPE_PLUGIN)
    path = tmp_path / "registry.toml"
    path.write_text('[plugins]\nfiles = ["slow_kd.py"]\n')
    return path


def student_deps(tmp_path, method: str, training=None, role: str = "student", registry_path=None):
    """What the student stage keys its cache by (the deps of `_model`), with the method's overrides replaced
    by `training` when given; nothing is trained."""
    import dataclasses

    from harness.protocol.request import EvalRequest
    from harness.protocol.run import Data, Protocol

    req = EvalRequest(method=method, registry=registry_path or ROOT / "registry.toml", cache_dir=tmp_path / "cache",
                      db=tmp_path / "harness.duckdb")
    protocol = Protocol(req)
    if training is not None:
        protocol.setup.method = dataclasses.replace(protocol.setup.method, training=training)
    data = Data(None, None, "", None, "tokenizer")
    seen = {}

    def trained(job, data):
        seen.update(deps=job.deps, cfg=job.cfg)
        return None

    protocol._trained = trained
    protocol._model(role, protocol.setup.student_size, data, ROWS, torch.arange(len(ROWS)), recipe={"method": method})
    return seen


def test_a_methods_overrides_are_what_the_student_trains_with_and_keys_its_cache_by(tmp_path):
    from harness.runtime.cache import key

    plain = student_deps(tmp_path, "soft-kd")
    assert plain["deps"]["training"] == registry.load(ROOT / "registry.toml").preset("tiny").student.key()
    slow = student_deps(tmp_path, "soft-kd", {"lr_scale": 0.1, "epochs": 2})
    assert slow["cfg"].lr == pytest.approx(1e-4) and slow["cfg"].epochs == 2  # what train() is handed
    assert slow["deps"]["training"] == slow["cfg"].key()
    # the same method and arguments, differing only in the override: another student
    assert key(slow["deps"]) != key(plain["deps"])
    assert key(student_deps(tmp_path, "soft-kd", {"lr_scale": 0.5})["deps"]) != key(plain["deps"])
    # keyed by the recipe trained, not by how it was declared: an override equal to the preset's is no change
    assert key(student_deps(tmp_path, "soft-kd", {"epochs": 12, "lr": 1e-3})["deps"]) == key(plain["deps"])
    # the baseline (and teacher) never take a method's overrides: their cached models are shared
    baseline = student_deps(tmp_path, "soft-kd", role="baseline")
    assert student_deps(tmp_path, "soft-kd", {"lr_scale": 0.1}, role="baseline")["deps"] == baseline["deps"]


def test_harness_list_shows_a_methods_overrides_beside_its_params(recipe_registry, capsys):
    assert main(["--registry", str(recipe_registry), "list"]) == 0
    out = capsys.readouterr().out
    block = out[out.index("  slow-kd"):].split("\n  ", 2)
    assert ("student recipe: the preset's, with lr_scale=0.1, epochs=2 (preset tiny: lr 0.0001, up to 2 epochs (best "
            "validation loss, patience 2), batch 32, warm-up 0.05, cosine schedule)") in block[2].split("\n")[0]
    soft = out[out.index("  soft-kd"):out.index("  hard-kd")]
    assert "student recipe" not in soft  # a method on the preset's recipe says nothing


def test_the_plan_prices_the_student_on_the_methods_recipe(recipe_registry, capsys):
    import json

    base = ["--registry", str(recipe_registry), "plan", "--family", "pythia", "--dataset", "fineweb", "--json"]
    assert main([*base, "--method", "slow-kd"]) == 0
    slow = {s["name"]: s for s in json.loads(capsys.readouterr().out)["stages"]}
    assert main([*base, "--method", "soft-kd"]) == 0
    plain = {s["name"]: s for s in json.loads(capsys.readouterr().out)["stages"]}
    assert slow["student"]["what"].startswith("train 2 epochs") and plain["student"]["what"].startswith("train 4 epochs")
    assert slow["student"]["flops"] == pytest.approx(plain["student"]["flops"] / 2)
    timeless = [{k: v for k, v in stages["baseline"].items() if k != "seconds"} for stages in (slow, plain)]
    assert timeless[0] == timeless[1]  # the baseline keeps the preset's recipe (seconds: this machine, measured)


@pytest.mark.slow
def test_show_prints_the_recipe_the_student_was_trained_with(tmp_path):
    import json

    from harness.leaderboard.run_lookup import student_recipe

    tiny = registry.load(ROOT / "registry.toml").preset("tiny")
    run = {"run_id": "r", "method": "soft-kd", "preset_values": json.dumps({"student": tiny.student.__dict__})}
    trained = tiny.student.overlaid({"lr_scale": 0.5, "epochs": 1})
    (tmp_path / "training.json").write_text(json.dumps({"role": "student", "training": trained.__dict__}))
    assert student_recipe(run, str(tmp_path)) == ("lr 0.0005, up to 1 epochs (best validation loss, patience 2),"
                                                         " batch 32, warm-up 0.05, cosine schedule (as trained)")
    # no checkpoint here (an imported run): the preset's recipe, with the method's overrides as declared
    gone = str(tmp_path / "elsewhere")
    assert student_recipe(run, gone) == f"{tiny.student.describe()} (the preset's)"
    minillm = FOUND.method("minillm")
    expected = tiny.training("student", minillm).describe()
    assert student_recipe({**run, "method": "minillm"}, gone).startswith(expected)
