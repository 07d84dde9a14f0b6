"""What the protocol derives from the three models beyond the exact-match verdict.

Membership attacks scored from the extraction pass, k-extractability curves, approximate
memorization of generated continuations, and the per-member features a memorization predictor
uses. Each returns column lists ready for the store (see docs/results.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from harness.contract.specs import Attack, Evidence, resolve_params
from harness.errors import unknown
from harness.measure import blind, membership
from harness.measure.extract import Extraction, greedy
from harness.measure.metrics import ROLES


@dataclass
class Extracted:
    """The extraction stage's results, which the analysis and the store read: each role's one-pass
    verdicts on the members and the non-members, the teacher-baseline KL per member, and the examples
    (token ids and sample ids, `protocol.data.Examples`) with their texts by split."""

    members: Any
    nonmembers: Any
    on_members: dict[str, Extraction]
    on_nonmembers: dict[str, Extraction]
    kl: torch.Tensor
    texts: dict[str, list[str]]
    on_validation: dict[str, Extraction] | None = None  # each role's pass over the validation split, if any


def evidence(result: Extraction, zlib_bits: torch.Tensor, reference: Evidence | None = None) -> Evidence:
    return Evidence(result.token_logprobs, result.token_mean, result.token_std, zlib_bits, reference)


def zlib_bits(texts: Sequence[str]) -> torch.Tensor:
    return torch.tensor([membership.zlib_entropy(t) for t in texts], dtype=torch.float64)


def attack_args(attacks: Mapping[str, Attack], given: Mapping[str, Mapping[str, str]]) -> dict[str, dict]:
    """Each attack's parameters, `--attack-arg NAME.KEY=VALUE` checked like `--method-arg`."""
    for name in given:
        if name not in attacks:
            raise unknown("attack (in --attack-arg)", name, attacks)
    return {name: resolve_params(spec.params, given.get(name, {}), f"attack {name}") for name, spec in attacks.items()}


def attack(attacks: Mapping[str, Attack], members: Mapping[str, Evidence], nonmembers: Mapping[str, Evidence],
           member_ids: Sequence[str], nonmember_ids: Sequence[str], seed: int = 0,
           params: Mapping[str, dict] | None = None,
           repeats: Sequence[int] | None = None) -> tuple[dict[str, float], dict[str, list], dict[str, list]]:
    """Every attack on every role: figures (AUC, TPR at low FPR, intervals), per-example scores, ROC curves.

    Figures are named `auc_<attack>_<role>`, `auc_<attack>_<role>_lo`, `tpr_1_<attack>_<role>` and so on.
    With each member's `repeats`, the same figures per repeat stratum against all non-members, as
    `rep<r>_auc_<attack>_<role>`...: the members seen once are the studies' regime, where planted
    duplicates cannot carry the figure.
    """
    strata = {} if repeats is None else {r: np.flatnonzero(np.asarray(repeats) == r) for r in sorted(set(repeats))}
    metrics: dict[str, float] = {}
    scores: dict[str, list] = {"role": [], "sample_id": [], "attack": [], "score": []}
    curves: dict[str, list] = {"role": [], "curve": [], "i": [], "x": [], "y": []}
    for name, spec in attacks.items():
        args = (params or {}).get(name) or resolve_params(spec.params, {}, f"attack {name}")
        for role in members:
            if spec.needs_reference and members[role].reference is None:
                continue
            on_m = spec.score(members[role], args).double().numpy()
            on_n = spec.score(nonmembers[role], args).double().numpy()
            for prefix, rows in (("", None), *((f"rep{r}_", idx) for r, idx in strata.items())):
                picked = on_m if rows is None else on_m[rows]
                for key, value in membership.attack_figures(picked, on_n, seed=seed).items():
                    base, bound = (key[:-3], key[-3:]) if key.endswith(("_lo", "_hi")) else (key, "")
                    metrics[f"{prefix}{base}_{name}_{role}{bound}"] = float(value)
            for ids, values in ((member_ids, on_m), (nonmember_ids, on_n)):
                scores["role"] += [role] * len(ids)
                scores["sample_id"] += list(ids)
                scores["attack"] += [name] * len(ids)
                scores["score"] += values.tolist()
            fpr, tpr = membership.roc_points(on_m, on_n)
            add_curve(curves, role, f"roc:{name}", fpr.tolist(), tpr.tolist())
    return metrics, scores, curves


def k_extractability(results: Mapping[str, Extraction], suffix_len: int) -> dict[str, list]:
    """Per role, the share of members whose first k suffix tokens the greedy continuation reproduces."""
    curves: dict[str, list] = {"role": [], "curve": [], "i": [], "x": [], "y": []}
    ks = torch.arange(1, suffix_len + 1)
    for role, result in results.items():
        share = (result.match_len[:, None] >= ks[None, :]).double().mean(dim=0)
        add_curve(curves, role, "k_extractable", ks.tolist(), share.tolist())
    return curves


def add_curve(curves: dict[str, list], role: str, name: str, xs: list[float], ys: list[float]) -> None:
    """One curve of `role` into the curves table's columns (ROC, k-extractability, validation loss by epoch)."""
    curves["role"] += [role] * len(xs)
    curves["curve"] += [name] * len(xs)
    curves["i"] += list(range(len(xs)))
    curves["x"] += [float(x) for x in xs]
    curves["y"] += [float(y) for y in ys]


def approx_sample(n: int, size: int) -> torch.Tensor:
    """Which members get a generated continuation: the same ones at every seed and for every method."""
    if size >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))[:size].sort().values


def approximate(model, ids: torch.Tensor, prefix_len: int, suffix_len: int, batch_size: int,
                desc: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The greedy continuation of each prefix, its token match fraction and normalized edit distance.

    Exact match says nothing about a continuation that is right but for one token; these do.
    The edit distance is Levenshtein over tokens divided by the suffix length.
    """
    from rapidfuzz.distance import Levenshtein

    generated = greedy(model, ids[:, :prefix_len], suffix_len, batch_size, desc=desc)[:, prefix_len:]
    truth = ids[:, prefix_len : prefix_len + suffix_len]
    match = (generated == truth).double().mean(dim=1)
    edit = torch.tensor([Levenshtein.normalized_distance(g, t)
                         for g, t in zip(generated.tolist(), truth.tolist())], dtype=torch.float64)
    return generated, match, edit


def derive(models: Mapping[str, Any], found: Extracted, refs: Mapping[str, tuple[Extraction, Extraction]] | None,
           attacks: Mapping[str, Attack], attack_args: Mapping[str, dict], preset, *, seed: int,
           decode: Callable[[Any], list[str]], start_is_reference: bool
           ) -> tuple[dict[str, float], dict[str, dict[str, list]], dict]:
    """Everything beyond the exact-match verdict, from the three models and their extractions.

    Returns the figures, the tables for the store (scores, curves, continuations, features) and each
    role's approximate match and edit distance per sampled member. `refs` holds each role's reference
    extractions on (members, non-members), or None when no attack is calibrated; `start_is_reference`
    says it is the student's own start, whose validation perplexity is then reported.
    """
    from harness.runtime import processes
    from harness.runtime.log import info as log

    p = preset
    members, nonmembers, on_members, on_nonmembers, kl, texts = (
        found.members, found.nonmembers, found.on_members, found.on_nonmembers, found.kl, found.texts)
    z_m, z_n = zlib_bits(texts[members.split]), zlib_bits(texts[nonmembers.split])

    def with_reference(role: str, side: int, result: Extraction, z: torch.Tensor) -> Evidence:
        return evidence(result, z, None if refs is None else evidence(refs[role][side], z))

    ev_m = {r: with_reference(r, 0, on_members[r], z_m) for r in ROLES}
    ev_n = {r: with_reference(r, 1, on_nonmembers[r], z_n) for r in ROLES}
    log(f"membership attacks: {', '.join(attacks)} on every role")
    metrics, scores, roc = attack(attacks, ev_m, ev_n, members.sample_ids, nonmembers.sample_ids, seed=seed,
                                  params=attack_args, repeats=members.repeats.tolist())
    # the blind baseline: the same test on the texts alone, no model; where it beats chance, the split shifted
    metrics.update(blind.figures(members.by_document(texts[members.split]),
                                 nonmembers.by_document(texts[nonmembers.split]), seed=seed))
    if refs is not None and start_is_reference:  # the student's own start, before fine-tuning
        metrics["val_ppl_start_student"] = refs["student"][1].loss.mean().exp().item()
    curves = k_extractability(on_members, p.suffix_len)
    for k in curves:
        curves[k] += roc[k]

    pick = approx_sample(len(members), p.approx_sample).tolist()
    picked_ids = [members.sample_ids[i] for i in pick]
    conts: dict[str, list] = {"role": [], "sample_id": [], "token_ids": [], "text": []}
    approx: dict[str, dict[str, tuple[float, float]]] = {}
    for role, model in models.items():
        if not pick:
            break
        generated, match, edit = processes.sharded(
            lambda part, model=model, role=role: approximate(
                model, members.ids[pick][part], p.prefix_len, p.suffix_len, p.generate_batch_size,
                desc=f"{role}: continuations"), len(pick))
        approx[role] = dict(zip(picked_ids, zip(match.tolist(), edit.tolist())))
        conts["role"] += [role] * len(pick)
        conts["sample_id"] += picked_ids
        conts["token_ids"] += generated.tolist()
        conts["text"] += decode(generated)
        metrics[f"approx_match_{role}"] = match.mean().item()
        metrics[f"edit_distance_{role}"] = edit.mean().item()
    # The drill-down's continuations, made here once so that the app and a published board read them
    # and never load a model: beside the sample's, every role's of each member some role memorized (the
    # examples that leaked). A member the role memorized continues with its true suffix: not stored.
    sampled = set(pick)
    leaked = torch.stack([on_members[r].memorized for r in ROLES]).any(dim=0).tolist()
    for role, model in models.items():
        memorized = on_members[role].memorized.tolist()
        rest = [i for i in range(len(members)) if leaked[i] and i not in sampled and not memorized[i]]
        if not rest:
            continue
        prompts = members.ids[rest][:, :p.prefix_len]
        generated = processes.sharded(
            lambda part, model=model, prompts=prompts, role=role: greedy(
                model, prompts[part], p.suffix_len, p.generate_batch_size, desc=f"{role}: continuations"
            )[:, p.prefix_len:], len(rest))
        conts["role"] += [role] * len(rest)
        conts["sample_id"] += [members.sample_ids[i] for i in rest]
        conts["token_ids"] += generated.tolist()
        conts["text"] += decode(generated)

    features = {"sample_id": list(members.sample_ids),
                "teacher_ppl": on_members["teacher"].loss.exp().tolist(),
                "baseline_ppl": on_members["baseline"].loss.exp().tolist(),
                "kl_teacher_baseline": kl.tolist(), "zlib_entropy": z_m.tolist(),
                "memorized_student": on_members["student"].memorized.tolist()}
    return metrics, {"scores": scores, "curves": curves, "continuations": conts, "features": features}, approx
