"""What a run records about itself: the run's row, each model's row, the examples and per-sample columns.

A run's row holds everything its figures depend on (plugins, arguments, preset, seed, data and
tokenizer hashes, versions, device) and its `config_hash` over them: two runs with the same hash
are the same experiment, which is how resuming, `--filter` and boards find earlier runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import secrets
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

import harness
from harness.config.registry import Preset, Training
from harness.contract.specs import KDMethod, describe_training
from harness.measure.metrics import ROLES
from harness.protocol.data import Examples
from harness.runtime import processes
from harness.runtime.cache import weights_hash
from harness.runtime.precision import precisions
from harness.store.database import config_hash

if TYPE_CHECKING:
    from harness.protocol.request import Resolved


@dataclass
class ModelInfo:
    role: str
    size: str
    key: str
    path: Path
    cached: bool
    train_seconds: float
    n_params: int
    epoch_loss: tuple[float, ...] = ()  # mean training loss per epoch (empty from a cache older than it)
    privacy: dict[str, float] = field(default_factory=dict)  # a DP-SGD student's dp_* figures (Spent)
    training: dict[str, Any] = field(default_factory=dict)  # the recipe that trained it, with its steps (`recipe`)
    validation_loss: tuple[float, ...] = ()  # the validation split's loss after each epoch (none: no split)


def run_row(p: Resolved, run_id: str, dataset_hash: str, tokenizer_key: str, members: Examples,
            nonmembers: Examples, filtered: dict[str, Any] | None) -> dict[str, Any]:
    import transformers

    req = p.req
    row = {
        "run_id": run_id, "family": p.family.name, "dataset": p.dataset.name, "method": p.method.name,
        "method_label": label(p.method, p.method_args, req.filter),
        "method_args": json.dumps(p.method_args), "dataset_args": json.dumps(p.dataset_args),
        # only those that differ from the family's defaults: what tells boards and `show` apart
        "family_args": json.dumps({q.name: p.family_args[q.name] for q in p.family.params
                                   if p.family_args[q.name] != q.default}),
        "teacher_access": p.method.teacher_access, "preset": p.preset.name,
        "preset_values": json.dumps(preset_dict(p.preset)), "seed": req.seed,
        "example_limit": req.limit, "prefix_len": p.preset.prefix_len,
        "suffix_len": p.preset.suffix_len, "n_members": len(members), "n_nonmembers": len(nonmembers),
        "dataset_hash": dataset_hash, "tokenizer_key": tokenizer_key,
        "harness_version": harness.__version__, "git_commit": git_commit(),
        "torch_version": torch.__version__, "transformers_version": transformers.__version__,
        "python_version": platform.python_version(), "device": f"{device()}; {precisions()}; {processes.layout()}",
        "command": req.command,
        "trust_remote_code": req.trust_remote_code, "reference": req.reference,
        "filter": None if filtered is None else json.dumps(
            {"by": req.filter, "source_run": filtered["source_run"], "removed": len(filtered["rows"])}),
    }
    row["config_hash"] = config_hash(row)  # its own fields: own_recipe follows from the method, hashed already
    row["own_recipe"] = own_recipe(p.method, p.method_args, p.preset, members)
    return row


def own_recipe(method: KDMethod, args: dict[str, Any], preset: Preset, members: Examples) -> str | None:
    """Why this run's student did not train on the recipe and data exposure a board's other rows share
    (the preset's student recipe, each member as often as it repeats), or None. A board sets such a
    row apart with this reason: a change of either moves memorization by itself."""
    reasons = []
    repeated = bool((members.repeats > 1).any())  # without repeats, merging them changes nothing
    if method.private and args.get("unit") == "member" and repeated:
        reasons.append("DP-SGD: a member with all its repeats is one record, clipped to one norm, so its repeats "
                       "pull about as hard as one copy (in effect deduplicated)")
    if method.deduplicate and repeated:
        reasons.append("each member seen once per epoch (deduplicated)")
    own = preset.training("student", method)
    if own != preset.student:  # an override equal to the preset's is no change, and is not named
        changed = {k: v for k, v in method.training.items()
                   if k == "lr_scale" or getattr(own, k) != getattr(preset.student, k)}
        reasons.append(f"its own recipe: {describe_training(changed)}")
    return "; ".join(reasons) or None


def recipe(cfg: Training, rows: int, privacy: dict[str, float], private: bool,
           validation_loss: tuple[float, ...] = ()) -> dict[str, Any]:
    """The recipe that trained a model (`models.training`) and its optimizer steps: DP-SGD's from its
    accountant (Poisson batches: records over the batch, per epoch), else `rows` in batches per epoch, as
    `harness.training.train` steps; None where a private model's figures are missing (an older cache).
    Scored on a validation split, it adds the epochs trained and the epoch whose weights were kept
    (the last, unless early stopping kept an earlier one)."""
    epochs = len(validation_loss) or cfg.epochs
    if private:
        steps = int(privacy["dp_steps"]) if "dp_steps" in privacy else None
    else:
        steps = epochs * math.ceil(rows / cfg.batch_size)
    out = {**cfg.key(), "steps": steps}
    if validation_loss:
        out["epochs_run"] = epochs
        out["kept_epoch"] = cfg.kept_epoch(validation_loss)
    return out



def curve(value: Any) -> tuple[float, ...]:
    """A cached `training.json`'s `epoch_loss`, read by value: finite numbers, at most 10,000 of them,
    else none (a cache is untrusted; a missing curve only leaves the loss figures out)."""
    if not isinstance(value, list) or len(value) > 10_000:
        return ()
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        return ()
    return tuple(float(v) for v in value)


PRIVACY_FIGURES = ("dp_epsilon", "dp_delta", "dp_noise_multiplier", "dp_sample_rate", "dp_steps", "dp_records")


def privacy(value: Any) -> dict[str, float]:
    """A cached `training.json`'s `privacy`, read by value: exactly the known figures as numbers, else none."""
    if not isinstance(value, dict) or set(value) != set(PRIVACY_FIGURES):
        return {}
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()):
        return {}
    return {k: float(value[k]) for k in PRIVACY_FIGURES}


def loss_figures(infos: dict[str, ModelInfo]) -> dict[str, float]:
    """Each role's mean training loss in its first and last epoch: `train_loss_first_student`, ...
    A student whose loss ends above where it began did not learn with its recipe (the board says so)."""
    out = {}
    for role, info in infos.items():
        if info.epoch_loss:
            out[f"train_loss_first_{role}"] = float(info.epoch_loss[0])
            out[f"train_loss_last_{role}"] = float(info.epoch_loss[-1])
        out.update(info.privacy)  # a DP-SGD student's epsilon, delta, noise and sampling
    return out


def model_row(family: str, run_id: str, info: ModelInfo, metrics: dict[str, float]) -> dict[str, Any]:
    return {
        "run_id": run_id, "role": info.role, "model_name": f"{family}-{info.size}", "size": info.size,
        "n_params": info.n_params, "artifact_key": info.key, "artifact_path": str(info.path.resolve()),
        "cached": info.cached, "train_seconds": info.train_seconds,
        "val_loss": metrics[f"val_loss_{info.role}"], "val_ppl": metrics[f"val_ppl_{info.role}"],
        "training": json.dumps(info.training) if info.training else None,
        "weights_sha256": weights_hash(info.path),
    }


def example_rows(dataset_hash: str, tokenizer_key: str, texts: dict[str, list[str]],
                 *splits: Examples) -> list[dict[str, Any]]:
    rows = []
    for examples in splits:
        for sid, ids, repeats, kind, text in zip(examples.sample_ids, examples.ids.tolist(),
                                                 examples.repeats.tolist(), examples.kinds, texts[examples.split]):
            rows.append({"dataset_hash": dataset_hash, "tokenizer_key": tokenizer_key, "sample_id": sid,
                         "split": examples.split, "repeats": repeats, "kind": kind, "token_ids": ids, "text": text})
    return rows


def sample_columns(members: Examples, nonmembers: Examples, on_members, on_nonmembers,
                   approx: dict[str, dict[str, tuple[float, float]]]) -> dict[str, list]:
    cols: dict[str, list] = {k: [] for k in ("role", "sample_id", "split", "repeats", "memorized", "match_len",
                                             "loss", "suffix_loss", "tie", "approx_match", "edit_distance",
                                             "sample_logprob")}
    for role in ROLES:
        for examples, result in ((members, on_members[role]), (nonmembers, on_nonmembers[role])):
            n = len(examples)
            cols["role"] += [role] * n
            cols["sample_id"] += examples.sample_ids
            cols["split"] += [examples.split] * n
            cols["repeats"] += examples.repeats.tolist()
            cols["memorized"] += result.memorized.tolist()
            cols["match_len"] += result.match_len.tolist()
            cols["loss"] += result.loss.tolist()
            cols["suffix_loss"] += result.suffix_loss.tolist()
            cols["tie"] += result.ties.tolist()
            cols["sample_logprob"] += (result.sample_logprob.tolist() if result.sample_logprob is not None
                                       else [None] * n)
            generated = approx.get(role, {}) if examples is members else {}
            cols["approx_match"] += [generated.get(sid, (None, None))[0] for sid in examples.sample_ids]
            cols["edit_distance"] += [generated.get(sid, (None, None))[1] for sid in examples.sample_ids]
    return cols


def label(method: KDMethod, args: dict[str, Any], filter: str | None = None) -> str:
    """The method's name, plus the arguments that differ from its defaults: how boards name it."""
    changed = [f"{p.name}={args[p.name]}" for p in method.params if args[p.name] != p.default]
    return " ".join([method.name, *changed, *([f"[filter: {filter}]"] if filter else [])])


def preset_dict(preset: Preset) -> dict[str, Any]:
    """The preset as recorded with a run. Fields added since the first runs are left out at their
    defaults, so that runs stored before they existed keep their configuration hash."""
    return {k: (v.key() if isinstance(v, Training) else v) for k, v in preset.__dict__.items()
            if not (k in LATER_DEFAULTS and v == LATER_DEFAULTS[k])}


LATER_DEFAULTS = {"distill_on": "members", "pretrain_domain_docs": 0}


def texts_hash(texts: list[str]) -> str:
    """sha256 of a list of texts, in order (the domain texts a start was pretrained on)."""
    h = hashlib.sha256()
    for text in texts:
        h.update(json.dumps(text, ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def tensor_hash(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()[:20] + f"-{tuple(t.shape)}"


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def device() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"


def git_commit() -> str | None:
    """The source tree's commit, with `+dirty` if it has uncommitted changes; None outside a checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha.stdout.strip() + ("+dirty" if dirty else "")
