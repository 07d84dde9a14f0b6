"""The standard protocol: data, teacher, baseline, student, extraction, inheritance.

Each model stage goes through the cache under a key of everything it depends on, so a second
method on the same family, dataset and seed trains only its student, and a killed run resumes
from its last finished stage.

Under `accelerate launch` every process runs this same code in step (see `harness.runtime.processes`):
training is data-parallel, the per-example passes are split and gathered, and the main process
alone writes the cache and the results.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import harness
from harness.config.registry import Training
from harness.contract.specs import TeacherData, describe_training
from harness.errors import RunFailed, UsageError
from harness.measure import analysis
from harness.measure.extract import Extraction, extract, extract_pair, greedy
from harness.measure.metrics import ROLES, figures
from harness.protocol import corpus, filtering, plan as plan_mod, provenance, references
from harness.protocol.data import Examples, content_hash, cut, halves
from harness.protocol.provenance import ModelInfo
from harness.protocol.request import EvalRequest, Resolved
from harness.runtime import processes, sharding
from harness.runtime.cache import Cache, key
from harness.runtime.log import info as log, warning as log_warning  # info: quiet on non-main processes
from harness.runtime.precision import for_scoring, precision
from harness.store.database import Store
from harness.training.distill import Distiller, disk_budget, free_disk, memory_budget
from harness.training.private import train_private
from harness.training.train import train

PRETRAIN_SEED = 0  # one pretrained checkpoint per size, whatever the run's seed


@dataclass
class RunResult:
    run_id: str
    metrics: dict[str, float]
    models: dict[str, ModelInfo]
    stage_seconds: dict[str, float]
    n_members: int
    n_nonmembers: int


class Protocol(Resolved):
    """One `harness eval`: the stages in order, each through the cache, then the run's rows stored."""

    def __init__(self, req: EvalRequest, bind: bool = True) -> None:
        super().__init__(req, bind)
        self.cache = Cache(req.cache_dir)
        self.store = Store(req.db)
        self.seconds: dict[str, float] = {}
        self.reference = None
        self._corpus: torch.Tensor | None = None  # the pretraining corpus in the family's tokens, once read
        self.filtered: dict[str, Any] | None = None  # what --filter did: the source run and the members left out
        self.public: Examples | None = None  # distill_on = "public": the half the baseline and student train on

    # ------------------------------------------------------------ the run

    def run(self) -> RunResult:
        if self.method.private and processes.world() > 1:
            raise UsageError(f"{self.method.name} trains with DP-SGD in one process (per-record clipping is not "
                             f"spread over processes here); run it without accelerate launch")
        if self.req.filter and self.preset.distill_on == "public":
            raise UsageError("--filter predicted leaves members out of the student's training set; with "
                             f"distill_on = public (preset {self.preset.name}) the student trains on the public half")
        if processes.is_main():
            self.store.check_writable()
        started = time.perf_counter()
        members, nonmembers, dataset_hash = self.data()
        self.seconds["data"] = time.perf_counter() - started
        if self.req.reference:  # before anything is logged or trained: a bad name is one line
            self.reference = references.load(self.req.reference, self.tokenizer, self.family.name)
        self._check_plan(members, nonmembers)
        if self.req.filter == "predicted":
            self.filtered = filtering.predicted(self, dataset_hash, members, nonmembers)
        run_id = processes.broadcast(provenance.new_run_id())
        if processes.is_main():
            self.store.start_run(provenance.run_row(self, run_id, dataset_hash, self.tokenizer_key, members,
                                                      nonmembers, self.filtered))
        log(f"run {run_id}: {self.family.name} / {self.dataset.name} / {self.method.name}, seed {self.req.seed}, "
            f"{len(members)} members and {len(nonmembers)} non-members; {processes.layout()}")
        try:
            result = self._stages(run_id, members, nonmembers, dataset_hash)
        except KeyboardInterrupt:
            if processes.is_main():
                self.store.fail_run(run_id, "interrupted", self.seconds)
            raise
        except Exception as err:  # noqa: BLE001 - any failure after the start marks the run failed
            message = str(err) if isinstance(err, (RunFailed, UsageError)) else f"{type(err).__name__}: {err}"
            if processes.is_main():
                self.store.fail_run(run_id, message, self.seconds)
            raise RunFailed(f"run {run_id} failed: {message}") from err
        return result

    def _check_plan(self, members: Examples, nonmembers: Examples) -> None:
        """Print the plan's head; refuse, in one line, a run that cannot fit this machine."""
        try:
            plan = self.plan(len(members.training_rows()), len(members), len(nonmembers),
                             plan_mod.local_hardware(processes.world()), processes.world(), processes.sharded_training())
        except Exception as err:  # noqa: BLE001 - a family that cannot be sized fails in its own stage, which says why
            log(f"plan: not available ({type(err).__name__}: {err})")
            return
        for line in plan_mod.lines(plan, head=True):
            log(line)
        # the main process's verdict on every process: they must all refuse, or all start
        problems = processes.broadcast(plan_mod.fits(plan, plan.hardware.memory, free_disk(self.cache.root))
                                       if processes.is_main() else None)
        if problems and not self.req.ignore_plan:
            raise UsageError(f"this run cannot fit: {problems[0]} (or --ignore-plan to start anyway)")
        for problem in problems:
            log_warning(problem)

    def plan_sizes(self) -> tuple[int, int, int, Any]:
        """Training rows, members, non-members and a tokenizer to size the models with, for `harness plan`.

        A family with no hub behind it (`tiny`) gets its data and tokenizer exactly as a run does.
        A hub family is planned offline: the counts come from the dataset's arguments (each member
        once) and its shapes carry their own vocabulary.
        """
        if self.found.family(self.family.name).configure is None:
            members, nonmembers, _ = self.data()
            return len(members.training_rows()), len(members), len(nonmembers), self.tokenizer
        counts = [next((int(self.dataset_args[k]) for k in names if k in self.dataset_args), None)
                  for names in (("members", "n_members"), ("nonmembers", "n_nonmembers"))]
        if None in counts:
            raise UsageError(f"dataset {self.dataset.name} declares no member and non-member counts; "
                             "the plan needs --dataset-arg members=N --dataset-arg nonmembers=N")
        members, nonmembers = counts
        if self.req.limit:
            members, nonmembers = min(members, self.req.limit), min(nonmembers, self.req.limit)
        return members, members, nonmembers, plan_mod.Vocabulary(int(self.family_args.get("vocab_size", 0)))

    def plan(self, train_rows: int, distinct_rows: int, n_nonmembers: int, hardware: plan_mod.Hardware,
             devices: int, sharded: bool, mfu: float = plan_mod.MFU, tokenizer=None, training_precision: str | None = None,
             disk: int | None = None) -> plan_mod.Plan:
        """The run's cost on `devices` x `hardware` (this machine's precision and cache disk unless
        given); the family sized on the meta device."""
        sizes = (self.teacher_size, self.student_size)
        shapes = plan_mod.shapes(self.found.family(self.family.name), self.family_args, sizes,
                                 tokenizer if tokenizer is not None else self.tokenizer)
        return plan_mod.make(family=self.family.name, sizes=sizes, shapes=shapes, dataset=self.dataset.name,
                             method=self.method, preset=self.preset, train_rows=train_rows,
                             distinct_rows=distinct_rows, n_nonmembers=n_nonmembers, hardware=hardware,
                             devices=devices, sharded=sharded, mfu=mfu,
                             training_precision=training_precision or precision(), memory_budget=memory_budget(),
                             disk_budget=disk_budget(self.cache.root) if disk is None else disk,
                             pretrain_tokens=self._pretrain_tokens(tokenizer if tokenizer is not None else self.tokenizer))

    def _pretrain_tokens(self, tokenizer) -> int:
        """Tokens of the generic corpus each size is pretrained on (0 for released weights), from a sample."""
        if self.found.family(self.family.name).released and self.family_args.get("weights") != "scratch":
            return 0
        return corpus.token_estimate(tokenizer, self.preset.pretrain_docs)

    def _stages(self, run_id: str, members: Examples, nonmembers: Examples, dataset_hash: str) -> RunResult:
        order = members.training_rows()
        models = {"teacher": self._model("teacher", self.teacher_size, members.ids, order, recipe={"loss": "ce"})}
        own = self.public if self.public is not None else members  # what the baseline and the student train on
        order = own.training_rows()
        models["baseline"] = self._model("baseline", self.student_size, own.ids, order, recipe={"loss": "ce"})
        if self.filtered is not None:
            order = order[~torch.isin(order, torch.tensor(self.filtered["rows"], dtype=torch.long))]
        models["student"] = self._student(models, own, order)

        t0 = time.perf_counter()
        on_members, on_nonmembers = {}, {}
        # Teacher and baseline side by side on the members: the same passes give their KL.
        on_members["teacher"], on_members["baseline"], kl = self._extract_pair(models, members)
        on_members["student"] = self._extract(models["student"][0], members, "student: extraction on members")
        for role, (model, _) in models.items():
            on_nonmembers[role] = self._extract(model, nonmembers, f"{role}: extraction on non-members")
        self.seconds["extraction"] = time.perf_counter() - t0
        metrics = figures(on_members, on_nonmembers)
        metrics.update(provenance.loss_figures({role: info for role, (_, info) in models.items()}))
        if self.public is not None:  # the baseline and the student trained on this many other members
            metrics["public_members"] = float(len(self.public))

        t0 = time.perf_counter()
        texts = {ex.split: self.tokenizer.batch_decode(ex.ids) for ex in (members, nonmembers)}
        derived, tables, approx = self._analysis(models, members, nonmembers, on_members, on_nonmembers, texts, kl)
        metrics.update(derived)
        if self.filtered is not None:
            metrics.update({f"filter_{k}": v for k, v in self.filtered["figures"].items()})
        self.seconds["analysis"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        infos = {role: info for role, (_, info) in models.items()}
        if processes.is_main():
            self.store.finish_run(
                run_id,
                models=[provenance.model_row(self.family.name, run_id, info, metrics) for info in infos.values()],
                examples=provenance.example_rows(dataset_hash, self.tokenizer_key, texts, members, nonmembers),
                samples=provenance.sample_columns(members, nonmembers, on_members, on_nonmembers, approx),
                metrics=metrics,
                stage_seconds={**self.seconds, "store": time.perf_counter() - t0},
                tables=tables,
            )
        processes.barrier()  # the run is stored before any process reports it
        self.seconds["store"] = time.perf_counter() - t0
        return RunResult(run_id, metrics, infos, dict(self.seconds), len(members), len(nonmembers))

    # ------------------------------------------------------------ stages

    def data(self) -> tuple[Examples, Examples, str]:
        """The members and non-members cut into token examples, and the dataset's content hash; sets the tokenizer."""
        split = self.dataset.load(self.dataset_args)
        if not split.members or not split.nonmembers:
            raise UsageError(f"dataset {self.dataset.name} yielded {len(split.members)} members and "
                             f"{len(split.nonmembers)} non-members; it needs both")
        dataset_hash = content_hash(self.dataset, split)
        self.tokenizer, self.tokenizer_key = self._tokenizer(split, dataset_hash)
        cut_args = (self.tokenizer, self.preset.example_len, self.dataset.chunk, self.dataset.name)
        kw = {"prefix_len": self.preset.prefix_len, "drop_short": self.dataset.drop_short}
        private = split.members
        if self.preset.distill_on == "public":  # Zhang et al.: the student never trains on the teacher's members
            private, public = halves(split.members)
            self.public = cut("member", public, *cut_args, **kw)
        members = cut("member", private, *cut_args, **kw).head(self.req.limit)
        nonmembers = cut("nonmember", split.nonmembers, *cut_args, **kw).head(self.req.limit)
        if members.dropped or nonmembers.dropped:
            log(f"{self.dataset.name}: left out {members.dropped} member and {nonmembers.dropped} non-member texts "
                f"shorter than an example of {self.preset.example_len} tokens")
        return members, nonmembers, dataset_hash

    def _tokenizer(self, split, dataset_hash: str):
        """The family's tokenizer; one without released weights trains its own on the pretraining corpus,
        as a released model's tokenizer comes from its pretraining, never from the members."""
        from transformers import AutoTokenizer

        source = ({"dataset_hash": dataset_hash} if self.family.released
                  else {"corpus": corpus.NAME, "docs": self.preset.pretrain_docs})
        deps = {"stage": "tokenizer", "family": self.family.name, **source, "harness": harness.__version__,
                **self.family_deps()}
        k = key(deps)
        with processes.main_first():
            path = self.cache.get("tokenizers", k)
            if path is None:
                texts = ([ex.text for ex in split.members] if self.family.released
                         else corpus.documents(self.preset.pretrain_docs))
                tokenizer = self.family.tokenizer(texts, **self.remote)
                path = self.cache.build("tokenizers", k, deps, tokenizer.save_pretrained)
        return AutoTokenizer.from_pretrained(path, trust_remote_code=self.req.trust_remote_code), k

    def _model(self, role: str, size: str, rows: torch.Tensor, order: torch.Tensor, recipe: dict[str, Any],
               distiller: Distiller | None = None) -> tuple[Any, ModelInfo]:
        """`role` fine-tuned from the weights of `size` before fine-tuning (see `_start`)."""
        start = self._start_key(size)
        cfg = self.preset.training(role, self.method)  # the student: the preset's recipe with the method's overrides
        deps = {"stage": "model", "family": self.family.name, "size": size, "tokenizer": self.tokenizer_key,
                "data": provenance.tensor_hash(rows[order]), "training": cfg.__dict__,
                "seed": self.req.seed, "recipe": recipe, **({"start": start} if start else {}),
                "precision": precision(), "harness": harness.__version__, **self.family_deps()}
        return self._trained(role, size, deps, rows, order, cfg, self.req.seed,
                             lambda: self._start(size), distiller)

    def _trained(self, role: str, size: str, deps: dict[str, Any], rows: torch.Tensor, order: torch.Tensor,
                 cfg: Training, seed: int, start, distiller: Distiller | None = None) -> tuple[Any, ModelInfo]:
        """The model keyed by `deps`: from the cache, or `start()` trained on `rows[order]` and cached."""
        k = key(deps)
        path = self.cache.get("models", k)
        if path is not None:
            model = self._load(path)
            record = json.loads((path / "training.json").read_text())
            self._from_cache(role, size, path)
            return model, ModelInfo(role, size, k, path, True, record["train_seconds"], provenance.n_params(model),
                                    provenance.curve(record.get("epoch_loss")), provenance.privacy(record.get("privacy")))
        model = start()  # before the clock: a pretraining stage it runs is timed as its own
        what = "sequences of the generic corpus" if deps["stage"] == "pretrain" else "sequences"
        log(f"{role}: training {self.family.name} {size} for {cfg.epochs} epochs on {len(order)} {what}")
        t0 = time.perf_counter()
        curve: list[float] = []
        spent = None
        if distiller is not None and distiller.method.private:
            model, spent = train_private(model, rows, order, cfg, seed=seed, stage=role, distiller=distiller,
                                         epoch_loss=curve)
        else:
            model = train(model, rows, order, cfg, seed=seed, stage=role, distiller=distiller, epoch_loss=curve)
        privacy = spent.figures() if spent is not None else {}
        train_seconds = time.perf_counter() - t0
        self.seconds[role] = self.seconds.get(role, 0.0) + train_seconds

        state = sharding.full_state_dict(model) if sharding.enabled() else None  # every process gathers

        def write(folder: Path) -> None:
            model.save_pretrained(folder, safe_serialization=True, state_dict=state)
            self.tokenizer.save_pretrained(folder)
            (folder / "training.json").write_text(json.dumps({"role": role, "train_seconds": train_seconds,
                                                              "epoch_loss": curve, "privacy": privacy, **deps},
                                                             indent=2))

        if processes.is_main():
            path = self.cache.build("models", k, deps, write)
        processes.barrier()
        path = self.cache.path("models", k)
        if sharding.enabled():  # scored as the cached model is: loaded from its folder and sharded again
            del model, state
            model = self._load(path)
        log(f"{role}: trained in {train_seconds:.1f}s, saved to {path}")
        return model, ModelInfo(role, size, k, path, False, train_seconds, provenance.n_params(model), tuple(curve),
                                privacy)

    # ------------------------------------------------------------ before fine-tuning

    def _from_cache(self, role: str, size: str, path: Path) -> None:
        """Say that `role` came from the cache; its stage took no training time."""
        log(f"{role}: {self.family.name} {size} from the cache ({path})")
        self.seconds.setdefault(role, 0.0)

    def _start(self, size: str):
        """The weights of `size` before fine-tuning, on the CPU: the released ones, or the pretraining stage's."""
        if self.family.released:
            torch.manual_seed(self.req.seed)  # a family with random heads draws them alike for baseline and student
            return self.family.model(size, self.tokenizer, **self.remote)
        from transformers import AutoModelForCausalLM

        path = self.cache.get("models", self._start_key(size))
        if path is None:  # trained once, then read back from its folder like every later run
            model, info = self._pretrained(size)
            del model
            path = info.path
        else:  # the checkpoint is read once, here, rather than loaded to the device and read again
            self._from_cache("pretrain", size, path)
        return AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, dtype=torch.float32)

    def _pretrain_deps(self, size: str) -> dict[str, Any]:
        p = self.preset
        return {"stage": "pretrain", "family": self.family.name, "size": size, "tokenizer": self.tokenizer_key,
                "corpus": corpus.NAME, "docs": p.pretrain_docs, "example_len": p.example_len,
                "training": p.pretrain.__dict__, "seed": PRETRAIN_SEED, "precision": precision(),
                "harness": harness.__version__, **self.family_deps()}

    def _start_key(self, size: str) -> str | None:
        return None if self.family.released else key(self._pretrain_deps(size))

    def _pretrained(self, size: str) -> tuple[Any, ModelInfo]:
        """`size` pretrained once on the generic corpus (one seed for every run: the studies' models
        have one released checkpoint), from random weights."""

        def random_weights():
            torch.manual_seed(PRETRAIN_SEED)
            return self.family.model(size, self.tokenizer, **self.remote)

        rows = self.corpus_rows()
        order = torch.arange(len(rows))
        return self._trained("pretrain", size, self._pretrain_deps(size), rows, order, self.preset.pretrain,
                             PRETRAIN_SEED, random_weights)

    def corpus_rows(self) -> torch.Tensor:
        """The pretraining corpus in the family's tokens: documents joined by EOS, cut into example-length rows."""
        if self._corpus is None:
            self._corpus = corpus.rows(self.tokenizer, self.preset.pretrain_docs, self.preset.example_len)
        return self._corpus

    def _load(self, path: Path):
        """A checkpoint from the cache, on this process's device, or sharded across the processes."""
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, dtype=torch.float32,
                                                     trust_remote_code=self.req.trust_remote_code)
        return sharding.shard(model) if sharding.enabled() else model.to(processes.device())

    def _student(self, models, members: Examples, order: torch.Tensor):
        teacher, teacher_info = models["teacher"]
        recipe = {"method": self.method.name, "args": self.method_args, "teacher": teacher_info.key}
        cfg = self.preset.training("student", self.method)
        if self.method.training:
            log(f"student: {self.method.name} overrides the preset's recipe ({describe_training(self.method.training)}): "
                f"{cfg.describe()}")
        if self.method.kind != "make_data":
            distiller = Distiller(self.method, self.method_args, teacher, members.ids,
                                  prefix_len=self.preset.prefix_len, layer_map=self.family.layers,
                                  batch_size=cfg.batch_size, stage="student",
                                  seed=self.req.seed, cache=self.cache, teacher_key=teacher_info.key,
                                  corpus=self.corpus_rows)
            log(f"student: teacher outputs: {distiller.outputs.tier.describe()}")
            if distiller.outputs.values_dtype != torch.float32:  # top-K values kept in float16: another student
                recipe["teacher_values"] = str(distiller.outputs.values_dtype)
            return self._model("student", self.student_size, members.ids, order, recipe, distiller)
        rows = self._teacher_data(teacher, teacher_info, members)
        return self._model("student", self.student_size, rows, order, recipe)

    def _teacher_data(self, teacher, teacher_info: ModelInfo, members: Examples) -> torch.Tensor:
        """A data-level method's training texts, made once per teacher and cached."""
        from safetensors.torch import load_file

        deps = {"stage": "teacher-data", "teacher": teacher_info.key, "data": provenance.tensor_hash(members.ids),
                "method": self.method.name,
                "args": self.method_args, "prefix_len": self.preset.prefix_len, "harness": harness.__version__}
        k = key(deps)
        if sharding.enabled():  # the sharded teacher's passes are collectives: every process generates
            path = processes.broadcast(self.cache.get("teacher-data", k) if processes.is_main() else None)
            if path is None:
                rows = self._make_teacher_data(teacher, members, deps, k)
                processes.barrier()
                return rows
            return load_file(Path(path) / "tokens.safetensors")["input_ids"]
        with processes.main_first():  # the main process makes the texts; the others read them from the cache
            path = self.cache.get("teacher-data", k)
            if path is not None:
                log(f"student: {self.method.name} training data from the cache ({path})")
                self.seconds["teacher_data"] = 0.0
                return load_file(path / "tokens.safetensors")["input_ids"]
            return self._make_teacher_data(teacher, members, deps, k)

    def _make_teacher_data(self, teacher, members: Examples, deps: dict[str, Any], k: str) -> torch.Tensor:
        from safetensors.torch import save_file

        t0 = time.perf_counter()
        batch = self.preset.generate_batch_size
        data = TeacherData(teacher, members.ids, self.preset.prefix_len,
                           generate=lambda model, prompts, n: greedy(model, prompts, n, batch, desc="teacher: generating"))
        rows = self.method.make_data(data, self.method_args)
        if rows.shape[0] != len(members):
            raise RunFailed(f"method {self.method.name} returned {rows.shape[0]} rows for {len(members)} members")
        self.seconds["teacher_data"] = time.perf_counter() - t0
        if processes.is_main():
            self.cache.build("teacher-data", k, deps,
                             lambda folder: save_file({"input_ids": rows.contiguous()}, folder / "tokens.safetensors"))
        log(f"student: {self.method.name} made its training data in {self.seconds['teacher_data']:.1f}s")
        return rows

    def _extract(self, model, examples: Examples, desc: str) -> Extraction:
        for_scoring(model).to(processes.device())
        return Extraction(**processes.sharded(
            lambda part: extract(model, examples.ids[part], self.preset.prefix_len, self.preset.suffix_len,
                                 self.preset.eval_batch_size, desc=desc).as_dict(), len(examples)))

    def _extract_pair(self, models, members: Examples) -> tuple[Extraction, Extraction, torch.Tensor]:
        teacher, baseline = for_scoring(models["teacher"][0]), for_scoring(models["baseline"][0])
        teacher.to(processes.device())
        baseline.to(processes.device())

        def part(rows: slice):
            first, second, kl = extract_pair(teacher, baseline, members.ids[rows], self.preset.prefix_len,
                                             self.preset.suffix_len, self.preset.eval_batch_size,
                                             desc="teacher and baseline: extraction on members")
            return first.as_dict(), second.as_dict(), kl

        first, second, kl = processes.sharded(part, len(members))
        return Extraction(**first), Extraction(**second), kl

    def _analysis(self, models, members: Examples, nonmembers: Examples, on_members, on_nonmembers,
                  texts: dict[str, list[str]], kl: torch.Tensor):
        """Attacks, curves, approximate memorization and predictor features: figures, tables, per-sample extras."""
        p = self.preset
        z_m, z_n = analysis.zlib_bits(texts[members.split]), analysis.zlib_bits(texts[nonmembers.split])
        refs = None  # a reference model costs a pass per role: only when an attack uses it
        if any(a.needs_reference for a in self.found.attacks.values()):
            refs = self._references(models, members, nonmembers, on_members, on_nonmembers)

        def with_reference(role: str, side: int, result: Extraction, z: torch.Tensor):
            return analysis.evidence(result, z, None if refs is None else analysis.evidence(refs[role][side], z))

        ev_m = {r: with_reference(r, 0, on_members[r], z_m) for r in ROLES}
        ev_n = {r: with_reference(r, 1, on_nonmembers[r], z_n) for r in ROLES}
        log(f"membership attacks: {', '.join(self.found.attacks)} on every role")
        metrics, scores, roc = analysis.attack(self.found.attacks, ev_m, ev_n, members.sample_ids,
                                               nonmembers.sample_ids, seed=self.req.seed, params=self.attack_args)
        if refs is not None and self.reference is None:  # the student's own start, before fine-tuning
            metrics["val_ppl_start_student"] = refs["student"][1].loss.mean().exp().item()
        curves = analysis.k_extractability(on_members, p.suffix_len)
        for k in curves:
            curves[k] += roc[k]

        pick = analysis.approx_sample(len(members), p.approx_sample).tolist()
        picked_ids = [members.sample_ids[i] for i in pick]
        conts: dict[str, list] = {"role": [], "sample_id": [], "token_ids": [], "text": []}
        approx: dict[str, dict[str, tuple[float, float]]] = {}
        for role, (model, _) in models.items():
            if not pick:
                break
            generated, match, edit = processes.sharded(
                lambda part, model=model, role=role: analysis.approximate(
                    model, members.ids[pick][part], p.prefix_len, p.suffix_len, p.generate_batch_size,
                    desc=f"{role}: continuations"), len(pick))
            approx[role] = dict(zip(picked_ids, zip(match.tolist(), edit.tolist())))
            conts["role"] += [role] * len(pick)
            conts["sample_id"] += picked_ids
            conts["token_ids"] += generated.tolist()
            conts["text"] += self.tokenizer.batch_decode(generated)
            metrics[f"approx_match_{role}"] = match.mean().item()
            metrics[f"edit_distance_{role}"] = edit.mean().item()

        features = {"sample_id": list(members.sample_ids),
                    "teacher_ppl": on_members["teacher"].loss.exp().tolist(),
                    "baseline_ppl": on_members["baseline"].loss.exp().tolist(),
                    "kl_teacher_baseline": kl.tolist(), "zlib_entropy": z_m.tolist(),
                    "memorized_student": on_members["student"].memorized.tolist()}
        return metrics, {"scores": scores, "curves": curves, "continuations": conts, "features": features}, approx

    def finished_run(self) -> str | None:
        """The latest finished run in the results at exactly this configuration, if any (none is run)."""
        return filtering.finished_run(self)

    def _references(self, models, members: Examples, nonmembers: Examples, on_members, on_nonmembers):
        """Each role's reference model's extractions on (members, non-members) (see `references`)."""
        if self.reference is not None:
            return references.extractions(self.reference, "reference", self._extract, members, nonmembers)
        return references.extractions(self._start(self.student_size), references.DEFAULT, self._extract,
                                      members, nonmembers)
