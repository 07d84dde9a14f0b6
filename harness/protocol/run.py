"""The standard protocol, stage by stage: tokenizer, pretrain, teacher, baseline, student, extraction, analysis.

Each model stage goes through the cache under a key of everything it depends on (`keys`), so a
second method on the same family, dataset and seed trains only its student, and a killed run
resumes from its last finished stage.

Under `accelerate launch` every process runs this same code in step (see `harness.runtime.processes`):
training is data-parallel, the per-example passes are split and gathered, and the main process
alone writes the cache and the results.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from harness.config.registry import Training
from harness.contract.specs import TeacherData, describe_training
from harness.errors import RunFailed, Terminated, UsageError
from harness.measure import analysis
from harness.measure.analysis import Extracted
from harness.measure.extract import Extraction, extract, extract_pair, greedy
from harness.measure.metrics import figures
from harness.protocol import corpus, costs, filtering, keys, provenance, references
from harness.protocol.data import Examples, content_hash, cut, halves
from harness.protocol.provenance import ModelInfo
from harness.protocol.request import EvalRequest, Resolved
from harness.runtime import processes, sharding
from harness.runtime.cache import Cache, key
from harness.runtime.log import info as log, warning as log_warning  # info: quiet on non-main processes
from harness.runtime.precision import for_scoring
from harness.runtime.timing import timed
from harness.store import read
from harness.store.database import Store
from harness.training.distill import Distiller, free_disk
from harness.training.private import train_private
from harness.training.train import Validation, train


@dataclass
class RunResult:
    run_id: str
    metrics: dict[str, float]
    models: dict[str, ModelInfo]
    stage_seconds: dict[str, float]
    n_members: int
    n_nonmembers: int


@dataclass
class Trained:
    """A model stage's result: the model, on its device, and what the run records about it."""

    model: Any
    info: ModelInfo


@dataclass
class Job:
    """One model to train, or to read from the cache: `role` at `size` from `start()`, trained on
    rows[order] with `cfg` and `seed`, keyed by `deps` (`keys`); a student with its method's `distiller`."""

    role: str
    size: str
    deps: dict[str, Any]
    rows: torch.Tensor
    order: torch.Tensor
    cfg: Training
    seed: int
    start: Callable[[], Any]
    distiller: Distiller | None = None


@dataclass
class Measured:
    """What the extraction and analysis stages found: the extractions, and the figures, the tables for
    the store and the approximate matches derived from them (`measure.analysis.derive`)."""

    found: Extracted
    metrics: dict[str, float]
    tables: dict[str, dict[str, list]]
    approx: dict


@dataclass
class Data:
    """The run's examples in the family's tokens, and that tokenizer: what every later stage reads."""

    members: Examples
    nonmembers: Examples
    dataset_hash: str
    tokenizer: Any
    tokenizer_key: str
    public: Examples | None = None  # distill_on = "public": the half the baseline and the student train on
    validation: Examples | None = None  # chooses and stops training, and gives the utility figures
    domain: list[str] | None = None  # texts of the dataset's kind, none of the above, for the starts' pretraining
    domain_hash: str | None = None

    @property
    def own(self) -> Examples:
        """What the baseline and the student train on: the members, or the public half."""
        return self.public if self.public is not None else self.members


class Protocol:
    """One `harness eval`: the stages in order, each through the cache, then the run's rows stored."""

    def __init__(self, req: EvalRequest, bind: bool = True) -> None:
        self.setup = Resolved(req, bind)  # the plugins, arguments, preset and sizes, checked
        self.req = req
        self.cache = Cache(req.cache_dir)
        self.store = Store(req.db)
        self.seconds: dict[str, float] = {}
        self.reference = None
        self._data: Data | None = None
        self._corpus: torch.Tensor | None = None  # the pretraining corpus in the family's tokens, once read

    # ------------------------------------------------------------ the run

    def run(self) -> RunResult:
        self._refuse_what_cannot_run()
        if processes.is_main():
            self.store.check_writable()
        with timed(self.seconds, "data"):
            data = self.data()
        self._refuse_what_cannot_stop(data)
        if self.req.reference:  # before anything is logged or trained: a bad name is one line
            self.reference = references.load(self.req.reference, data.tokenizer, self.setup.family.name)
        self._check_plan(data)
        filtered = self._filter(data) if self.req.filter is not None else None
        run_id = processes.broadcast(provenance.new_run_id())
        if processes.is_main():
            self.store.start_run(self._run_row(run_id, data, filtered))
        log(f"run {run_id}: {self.setup.family.name} / {self.setup.dataset.name} / {self.setup.method.name}, "
            f"seed {self.req.seed}, {len(data.members)} members and {len(data.nonmembers)} non-members; "
            f"{processes.layout()}")
        try:
            return self._stages(run_id, data, filtered)
        except (KeyboardInterrupt, Terminated) as err:
            if processes.is_main():
                self.store.fail_run(run_id, "stopped by SIGTERM" if isinstance(err, Terminated) else "interrupted",
                                    self.seconds)
            raise
        except Exception as err:  # noqa: BLE001 - any failure after the start marks the run failed
            message = str(err) if isinstance(err, (RunFailed, UsageError)) else f"{type(err).__name__}: {err}"
            if processes.is_main():
                self.store.fail_run(run_id, message, self.seconds)
            raise RunFailed(f"run {run_id} failed: {message}") from err

    def _stages(self, run_id: str, data: Data, filtered: dict[str, Any] | None) -> RunResult:
        """The stages as they run. Pretraining is lazy: a size is pretrained when a stage first needs its start."""
        models = {"teacher": self.teacher(data)}
        models["baseline"] = self.baseline(data)
        models["student"] = self.student(data, models["teacher"], filtered)
        with timed(self.seconds, "extraction"):
            found = self.extraction(models, data)
        with timed(self.seconds, "analysis"):
            measured = self.analysis(models, data, found)
            if filtered is not None:
                measured.metrics.update({f"filter_{k}": v for k, v in filtered["figures"].items()})
        return self._store_run(run_id, data, models, measured)

    def _refuse_what_cannot_stop(self, data: Data) -> None:
        """Early stopping needs a validation split, and a DP-SGD student trains the steps it planned."""
        stopping = [role for role in ("teacher", "baseline", "student")
                    if self.setup.preset.training(role, self.setup.method).patience]
        if stopping and data.validation is None:
            raise UsageError(f"preset {self.setup.preset.name} stops the {stopping[0]}'s training early on a "
                             f"validation split (patience), and dataset {self.setup.dataset.name} has none; "
                             "use a dataset with one or a preset without patience")
        if self.setup.method.private and "student" in stopping:
            raise UsageError(f"{self.setup.method.name} trains with DP-SGD for the steps its accountant planned; "
                             "its recipe cannot stop early (set patience = 0 in its training overrides)")

    def _refuse_what_cannot_run(self) -> None:
        if self.setup.method.private and processes.world() > 1:
            raise UsageError(f"{self.setup.method.name} trains with DP-SGD in one process (per-record clipping is not "
                             f"spread over processes here); run it without accelerate launch")
        if self.req.filter and self.setup.preset.distill_on == "public":
            raise UsageError(f"--filter {self.req.filter} leaves members out of the student's training set; with "
                             f"distill_on = public (preset {self.setup.preset.name}) the student trains on the "
                             "public half")

    def _check_plan(self, data: Data) -> None:
        """Print the plan's head; refuse, in one line, a run that cannot fit this machine."""
        try:
            plan = costs.of_run(self.setup, len(data.members.training_rows()), len(data.members),
                                len(data.nonmembers), costs.local_hardware(processes.world()),
                                processes.world(), processes.sharded_training(), tokenizer=data.tokenizer,
                                cache_root=self.cache.root)
        except Exception as err:  # noqa: BLE001 - a family that cannot be sized fails in its own stage, which says why
            log(f"plan: not available ({type(err).__name__}: {err})")
            return
        for line in costs.lines(plan, head=True):
            log(line)
        # the main process's verdict on every process: they must all refuse, or all start
        problems = processes.broadcast(costs.fits(plan, plan.hardware.memory, free_disk(self.cache.root))
                                       if processes.is_main() else None)
        if problems and not self.req.ignore_plan:
            raise UsageError(f"this run cannot fit: {problems[0]} (or --ignore-plan to start anyway)")
        for problem in problems:
            log_warning(problem)

    # ------------------------------------------------------------ data and tokenizer

    def data(self) -> Data:
        """The members and non-members cut into token examples, with the dataset's content hash and
        the tokenizer stage's tokenizer (read once per protocol)."""
        if self._data is not None:
            return self._data
        s = self.setup
        split = s.dataset.load(s.dataset_args)
        if not split.members or not split.nonmembers:
            raise UsageError(f"dataset {s.dataset.name} yielded {len(split.members)} members and "
                             f"{len(split.nonmembers)} non-members; it needs both")
        dataset_hash = content_hash(s.dataset, split)
        tokenizer, tokenizer_key = self.tokenizer(split, dataset_hash)
        cut_args = (tokenizer, s.preset.example_len, s.dataset.chunk, s.dataset.name)
        kw = {"prefix_len": s.preset.prefix_len, "drop_short": s.dataset.drop_short}
        private, public = split.members, None
        if s.preset.distill_on == "public":  # Zhang et al.: the student never trains on the teacher's members
            private, public = halves(split.members)
            public = cut("member", public, *cut_args, **kw)
        members = cut("member", private, *cut_args, **kw).head(self.req.limit)
        nonmembers = cut("nonmember", split.nonmembers, *cut_args, **kw).head(self.req.limit)
        validation = (cut("validation", split.validation, *cut_args, **kw).head(self.req.limit)
                      if split.validation else None)
        if members.dropped or nonmembers.dropped:
            log(f"{s.dataset.name}: left out {members.dropped} member and {nonmembers.dropped} non-member texts "
                f"shorter than an example of {s.preset.example_len} tokens")
        domain = self._domain(split)
        self._data = Data(members, nonmembers, dataset_hash, tokenizer, tokenizer_key, public, validation,
                          domain, provenance.texts_hash(domain) if domain else None)
        return self._data

    def _domain(self, split) -> list[str] | None:
        """The dataset's domain texts for the starts' pretraining (`pretrain_domain_docs`), checked to
        hold none of the split's texts: a start that had seen a member would leak it to every role."""
        s = self.setup
        n = s.preset.pretrain_domain_docs
        if n and s.family.released:
            log(f"pretrain_domain_docs: {s.family.name} starts from its released weights, which are not pretrained "
                "here; its domain texts are not used")
        if not n or s.family.released:
            return None
        if s.dataset.domain is None:
            raise UsageError(f"preset {s.preset.name} pretrains on {n} texts of the dataset's kind, and dataset "
                             f"{s.dataset.name} gives none (no `domain`); use a preset without pretrain_domain_docs")
        texts = s.dataset.domain(s.dataset_args, n)
        if not isinstance(texts, list) or len(texts) != n or not all(isinstance(t, str) for t in texts):
            raise RunFailed(f"dataset {s.dataset.name}: its domain gave no list of {n} texts")
        used = {ex.text for ex in (*split.members, *split.nonmembers, *split.validation)}
        overlap = sum(t in used for t in texts)
        if overlap:
            raise RunFailed(f"dataset {s.dataset.name}: {overlap} of its {n} domain texts are members, validation "
                            "or non-members; a start pretrained on them would hold what the run tests")
        return texts

    def tokenizer(self, split, dataset_hash: str):
        """The tokenizer stage: the family's tokenizer; one without released weights trains its own on
        the pretraining corpus, as a released model's tokenizer comes from its pretraining, never
        from the members."""
        from transformers import AutoTokenizer

        s = self.setup
        deps = keys.tokenizer(s, dataset_hash)
        k = key(deps)
        with processes.main_first():
            path = self.cache.get("tokenizers", k)
            if path is None:
                texts = ([ex.text for ex in split.members] if s.family.released
                         else corpus.documents(s.preset.pretrain_docs))
                tokenizer = s.family.tokenizer(texts, **s.remote)
                path = self.cache.build("tokenizers", k, deps, tokenizer.save_pretrained)
        return AutoTokenizer.from_pretrained(path, trust_remote_code=self.req.trust_remote_code), k

    # ------------------------------------------------------------ pretrain: the weights before fine-tuning

    def start(self, size: str, data: Data):
        """The weights of `size` before fine-tuning, on the CPU: the released ones, or the pretraining stage's."""
        s = self.setup
        if s.family.released:
            torch.manual_seed(self.req.seed)  # a family with random heads draws them alike for baseline and student
            return s.family.model(size, data.tokenizer, **s.remote)
        from transformers import AutoModelForCausalLM

        path = self.cache.get("models", self._start_key(size, data))
        if path is None:  # trained once, then read back from its folder like every later run
            path = self.pretrain(size, data)
        else:  # the checkpoint is read once, here, rather than loaded to the device and read again
            self._from_cache("pretrain", size, path)
        return AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, dtype=torch.float32)

    def pretrain(self, size: str, data: Data) -> Path:
        """The pretraining stage: `size` pretrained once on the generic corpus, from random weights (one
        seed for every run: the studies' models have one released checkpoint). Returns its folder."""
        s = self.setup

        def random_weights():
            torch.manual_seed(keys.PRETRAIN_SEED)
            return s.family.model(size, data.tokenizer, **s.remote)

        rows = self.corpus_rows(data)
        if data.domain:  # the dataset's kind beside the generic corpus: a start that knows the domain
            rows = torch.cat([rows, corpus.pack(data.tokenizer, data.domain, s.preset.example_len)])
        job = Job("pretrain", size, keys.pretrain(s, size, data.tokenizer_key, data.domain_hash), rows,
                  torch.arange(len(rows)), s.preset.pretrain, keys.PRETRAIN_SEED, random_weights)
        return self._trained(job, data).info.path

    def _start_key(self, size: str, data: Data) -> str | None:
        if self.setup.family.released:
            return None
        return key(keys.pretrain(self.setup, size, data.tokenizer_key, data.domain_hash))

    def corpus_rows(self, data: Data) -> torch.Tensor:
        """The pretraining corpus in the family's tokens: documents joined by EOS, cut into example-length rows."""
        if self._corpus is None:
            self._corpus = corpus.rows(data.tokenizer, self.setup.preset.pretrain_docs, self.setup.preset.example_len)
        return self._corpus

    # ------------------------------------------------------------ teacher, baseline, student

    def teacher(self, data: Data) -> Trained:
        """The teacher stage: the large model fine-tuned on the members."""
        return self._model("teacher", self.setup.teacher_size, data, data.members.ids,
                           data.members.training_rows(), recipe={"loss": "ce"})

    def baseline(self, data: Data) -> Trained:
        """The baseline stage: the student-size model fine-tuned on the same data as the student, without a teacher."""
        own = data.own
        return self._model("baseline", self.setup.student_size, data, own.ids, own.training_rows(),
                           recipe={"loss": "ce"})

    def student(self, data: Data, teacher: Trained, filtered: dict[str, Any] | None = None) -> Trained:
        """The student stage: the method's distillation from the teacher (without the filtered rows)."""
        s = self.setup
        own = data.own
        # deduplicated: each member once per epoch; the cache key holds rows[order], so it is another student
        order = torch.arange(len(own)) if s.method.deduplicate else own.training_rows()
        if s.method.deduplicate:
            log(f"student: {s.method.name} sees each of {len(own)} members once per epoch "
                f"(the training set repeats them to {len(own.training_rows())} rows)")
        if filtered is not None:
            order = order[~torch.isin(order, torch.tensor(filtered["rows"], dtype=torch.long))]
        recipe = {"method": s.method.name, "args": s.method_args, "teacher": teacher.info.key}
        cfg = s.preset.training("student", s.method)
        if s.method.training:
            log(f"student: {s.method.name} overrides the preset's recipe ({describe_training(s.method.training)}): "
                f"{cfg.describe()}")
        if s.method.kind == "make_data":
            rows = self._teacher_data(teacher, own)
            return self._model("student", s.student_size, data, rows, order, recipe)
        distiller = Distiller(s.method, s.method_args, teacher.model, own.ids,
                              prefix_len=s.preset.prefix_len, layer_map=s.family.layers,
                              batch_size=cfg.batch_size, stage="student",
                              seed=self.req.seed, cache=self.cache, teacher_key=teacher.info.key,
                              corpus=lambda: self.corpus_rows(data))
        log(f"student: teacher outputs: {distiller.outputs.tier.describe()}")
        if distiller.outputs.values_dtype != torch.float32:  # top-K values kept in float16: another student
            recipe["teacher_values"] = str(distiller.outputs.values_dtype)
        return self._model("student", s.student_size, data, own.ids, order, recipe, distiller)

    def _model(self, role: str, size: str, data: Data, rows: torch.Tensor, order: torch.Tensor,
               recipe: dict[str, Any], distiller: Distiller | None = None) -> Trained:
        """`role` fine-tuned from the weights of `size` before fine-tuning (see `start`)."""
        cfg = self.setup.preset.training(role, self.setup.method)  # the student: the preset's with the method's overrides
        deps = keys.model(self.setup, role, size, data.tokenizer_key, rows[order], recipe, self._start_key(size, data))
        return self._trained(Job(role, size, deps, rows, order, cfg, self.req.seed, lambda: self.start(size, data),
                                 distiller), data)

    def _trained(self, job: Job, data: Data) -> Trained:
        """The model keyed by `job.deps`: from the cache, or `job.start()` trained on `rows[order]` and cached."""
        role, size, deps, rows, order, cfg = job.role, job.size, job.deps, job.rows, job.order, job.cfg
        k = key(deps)
        private = job.distiller is not None and job.distiller.method.private
        path = self.cache.get("models", k)
        if path is not None:
            model = self._load(path)
            record = json.loads((path / "training.json").read_text())
            self._from_cache(role, size, path)
            privacy = provenance.privacy(record.get("privacy"))  # and the recipe is cfg: the key holds it
            checked = provenance.curve(record.get("validation_loss"))
            return Trained(model, ModelInfo(role, size, k, path, True, record["train_seconds"],
                                            provenance.n_params(model), provenance.curve(record.get("epoch_loss")),
                                            privacy, provenance.recipe(cfg, len(order), privacy, private, checked),
                                            checked))
        model = job.start()  # before the clock: a pretraining stage it runs is timed as its own
        what = "sequences of the pretraining corpus" if deps["stage"] == "pretrain" else "sequences"
        log(f"{role}: training {self.setup.family.name} {size} on {len(order)} {what} ({cfg.describe()})")
        curve: list[float] = []
        spent = None
        # every fine-tuned role is scored on the validation split after each epoch (pretraining is not)
        validation = (Validation(data.validation.ids, self.setup.preset.eval_batch_size)
                      if data.validation is not None and deps["stage"] == "model" and not private else None)
        with timed(self.seconds, role) as clock:
            if private:
                model, spent = train_private(model, rows, order, cfg, seed=job.seed, stage=role,
                                             distiller=job.distiller, epoch_loss=curve)
            else:
                model = train(model, rows, order, cfg, seed=job.seed, stage=role, distiller=job.distiller,
                              epoch_loss=curve, validation=validation)
        privacy = spent.figures() if spent is not None else {}
        train_seconds = clock.seconds
        checked = tuple(validation.losses) if validation is not None else ()
        if checked:
            log(f"{role}: validation loss by epoch {', '.join(f'{v:.3f}' for v in checked)}; kept epoch "
                f"{cfg.kept_epoch(checked)} of {len(checked)}")

        state = sharding.full_state_dict(model) if sharding.enabled() else None  # every process gathers

        def write(folder: Path) -> None:
            model.save_pretrained(folder, safe_serialization=True, state_dict=state)
            data.tokenizer.save_pretrained(folder)
            (folder / "training.json").write_text(json.dumps({"role": role, "train_seconds": train_seconds,
                                                              "epoch_loss": curve, "validation_loss": list(checked),
                                                              "privacy": privacy, **deps}, indent=2))

        if processes.is_main():
            path = self.cache.build("models", k, deps, write)
        processes.barrier()
        path = self.cache.path("models", k)
        if sharding.enabled():  # scored as the cached model is: loaded from its folder and sharded again
            del model, state
            model = self._load(path)
        log(f"{role}: trained in {train_seconds:.1f}s, saved to {path}")
        return Trained(model, ModelInfo(role, size, k, path, False, train_seconds, provenance.n_params(model),
                                        tuple(curve), privacy,
                                        provenance.recipe(cfg, len(order), privacy, private, checked), checked))

    def _from_cache(self, role: str, size: str, path: Path) -> None:
        """Say that `role` came from the cache; its stage took no training time."""
        log(f"{role}: {self.setup.family.name} {size} from the cache ({path})")
        self.seconds.setdefault(role, 0.0)

    def _load(self, path: Path):
        """A checkpoint from the cache, on this process's device, or sharded across the processes."""
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, dtype=torch.float32,
                                                     trust_remote_code=self.req.trust_remote_code)
        return sharding.shard(model) if sharding.enabled() else model.to(processes.device())

    def _teacher_data(self, teacher: Trained, members: Examples) -> torch.Tensor:
        """A data-level method's training texts, made once per teacher and cached."""
        from safetensors.torch import load_file

        deps = keys.teacher_data(self.setup, teacher.info.key, members.ids)
        k = key(deps)
        if sharding.enabled():  # the sharded teacher's passes are collectives: every process generates
            path = processes.broadcast(self.cache.get("teacher-data", k) if processes.is_main() else None)
            if path is None:
                rows = self._make_teacher_data(teacher.model, members, deps, k)
                processes.barrier()
                return rows
            return load_file(Path(path) / "tokens.safetensors")["input_ids"]
        with processes.main_first():  # the main process makes the texts; the others read them from the cache
            path = self.cache.get("teacher-data", k)
            if path is not None:
                log(f"student: {self.setup.method.name} training data from the cache ({path})")
                self.seconds["teacher_data"] = 0.0
                return load_file(path / "tokens.safetensors")["input_ids"]
            return self._make_teacher_data(teacher.model, members, deps, k)

    def _make_teacher_data(self, teacher, members: Examples, deps: dict[str, Any], k: str) -> torch.Tensor:
        from safetensors.torch import save_file

        s = self.setup
        batch = s.preset.generate_batch_size
        with timed(self.seconds, "teacher_data") as clock:
            data = TeacherData(teacher, members.ids, s.preset.prefix_len,
                               generate=lambda model, prompts, n: greedy(model, prompts, n, batch,
                                                                         desc="teacher: generating"))
            rows = s.method.make_data(data, s.method_args)
            if rows.shape[0] != len(members):
                raise RunFailed(f"method {s.method.name} returned {rows.shape[0]} rows for {len(members)} members")
        if processes.is_main():
            self.cache.build("teacher-data", k, deps,
                             lambda folder: save_file({"input_ids": rows.contiguous()}, folder / "tokens.safetensors"))
        log(f"student: {s.method.name} made its training data in {clock.seconds:.1f}s")
        return rows

    # ------------------------------------------------------------ extraction and analysis

    def extraction(self, models: dict[str, Trained], data: Data) -> Extracted:
        """The extraction stage: each role's one-pass verdicts on the members and non-members.
        Teacher and baseline run side by side on the members: the same passes give their KL."""
        on_members, on_nonmembers = {}, {}
        on_members["teacher"], on_members["baseline"], kl = self._extract_pair(models, data.members)
        on_members["student"] = self._extract(models["student"].model, data.members, "student: extraction on members")
        for role, trained in models.items():
            on_nonmembers[role] = self._extract(trained.model, data.nonmembers, f"{role}: extraction on non-members")
        on_validation = ({role: self._extract(trained.model, data.validation, f"{role}: validation loss")
                          for role, trained in models.items()} if data.validation is not None else None)
        texts = {ex.split: ex.texts(data.tokenizer) for ex in (data.members, data.nonmembers)}
        return Extracted(data.members, data.nonmembers, on_members, on_nonmembers, kl, texts, on_validation)

    def _extract(self, model, examples: Examples, desc: str) -> Extraction:
        p = self.setup.preset
        for_scoring(model).to(processes.device())
        return Extraction(**processes.sharded(
            lambda part: extract(model, examples.ids[part], p.prefix_len, p.suffix_len,
                                 p.eval_batch_size, desc=desc).as_dict(), len(examples)))

    def _extract_pair(self, models: dict[str, Trained], members: Examples) -> tuple[Extraction, Extraction, torch.Tensor]:
        p = self.setup.preset
        teacher, baseline = for_scoring(models["teacher"].model), for_scoring(models["baseline"].model)
        teacher.to(processes.device())
        baseline.to(processes.device())

        def part(rows: slice):
            first, second, kl = extract_pair(teacher, baseline, members.ids[rows], p.prefix_len,
                                             p.suffix_len, p.eval_batch_size,
                                             desc="teacher and baseline: extraction on members")
            return first.as_dict(), second.as_dict(), kl

        first, second, kl = processes.sharded(part, len(members))
        return Extraction(**first), Extraction(**second), kl

    def analysis(self, models: dict[str, Trained], data: Data, found: Extracted) -> Measured:
        """The analysis stage (`measure.analysis.derive`): attacks, curves, continuations, predictor features."""
        s = self.setup
        refs, start_loss = None, None  # a reference model costs a pass per role: only when an attack uses it
        if any(a.needs_reference for a in s.found.attacks.values()):
            refs, start_loss = self._references(models, data)
        metrics = figures(found.on_members, found.on_nonmembers, found.on_validation)
        metrics.update(provenance.loss_figures({role: trained.info for role, trained in models.items()}))
        if data.public is not None:  # the baseline and the student trained on this many other members
            metrics["public_members"] = float(len(data.public))
        derived, tables, approx = analysis.derive(
            {role: trained.model for role, trained in models.items()}, found, refs, s.found.attacks, s.attack_args,
            s.preset, seed=self.req.seed, decode=data.tokenizer.batch_decode,
            start_is_reference=self.reference is None)
        metrics.update(derived)
        if start_loss is not None:  # the start's perplexity on the split it is named for, where there is one
            metrics["val_ppl_start_student"] = math.exp(start_loss)
        for role, trained in models.items():  # the validation loss after each epoch: where training stopped
            losses = trained.info.validation_loss
            analysis.add_curve(tables["curves"], role, "validation_loss", list(range(1, len(losses) + 1)), losses)
        return Measured(found, metrics, tables, approx)

    def _references(self, models, data: Data) -> tuple[dict, float | None]:
        """Each role's reference model's extractions on (members, non-members) (see `references`); with the
        default reference, the student's start, also its mean loss on the validation split, if any."""
        if self.reference is not None:
            return references.extractions(self.reference, "reference", self._extract, data.members,
                                          data.nonmembers), None
        start = self.start(self.setup.student_size, data)
        refs = references.extractions(start, references.DEFAULT, self._extract, data.members, data.nonmembers)
        if data.validation is None:
            return refs, None
        return refs, self._extract(start, data.validation, "start: validation loss").loss.mean().item()

    # ------------------------------------------------------------ the run's rows

    def _run_row(self, run_id: str, data: Data, filtered: dict[str, Any] | None) -> dict[str, Any]:
        return provenance.run_row(self.setup, run_id, data.dataset_hash, data.tokenizer_key, data.members,
                                  data.nonmembers, filtered)

    def _store_run(self, run_id: str, data: Data, models: dict[str, Trained], measured: Measured) -> RunResult:
        found, metrics = measured.found, measured.metrics
        infos = {role: trained.info for role, trained in models.items()}
        with timed(self.seconds, "store") as clock:
            if processes.is_main():
                self.store.finish_run(
                    run_id,
                    models=[provenance.model_row(self.setup.family.name, run_id, info, metrics)
                            for info in infos.values()],
                    examples=provenance.example_rows(data.dataset_hash, data.tokenizer_key, found.texts, data.members,
                                                     data.nonmembers),
                    samples=provenance.sample_columns(data.members, data.nonmembers, found.on_members,
                                                      found.on_nonmembers, measured.approx),
                    metrics=metrics,
                    stage_seconds={**self.seconds, "store": clock.so_far()},
                    tables=measured.tables,
                )
            processes.barrier()  # the run is stored before any process reports it
        return RunResult(run_id, metrics, infos, dict(self.seconds), len(data.members), len(data.nonmembers))

    # ------------------------------------------------------------ runs already stored

    def _filter(self, data: Data) -> dict[str, Any]:
        """`--filter predicted`: the unfiltered run at this configuration, found or run first, and the rows it
        flags; `random` and `matched`: as many rows, drawn at random (`filtering.control`)."""
        source = processes.broadcast(self._unfiltered_run(data) if processes.is_main() else None)
        if source is None:
            log(f"filter: no unfiltered {self.setup.method.name} run at this configuration yet; running it first")
            unfiltered = replace(self.req, filter=None, command=self.req.command + "  [the unfiltered run]")
            source = Protocol(unfiltered).run().run_id
        if self.req.filter == "predicted":
            return filtering.predicted(self.store, source, data.members)
        return filtering.control(self.store, source, data.members, self.req.filter, self.req.seed)

    def _unfiltered_run(self, data: Data) -> str | None:
        """The latest finished run without a filter at this configuration (main process only)."""
        row = self._run_row("", data, None)
        if not self.store.path.is_file():
            return None
        with self.store.reading() as con:
            return read.latest_finished(con, row["config_hash"], require_features=True)

    def finished_run(self) -> str | None:
        """The latest finished run in the results at exactly this configuration, if any (none is run)."""
        if not processes.is_main():
            return processes.broadcast(None)
        unfiltered = self._unfiltered_run(self.data())
        if self.req.filter is None or unfiltered is None:
            return processes.broadcast(unfiltered)
        with self.store.reading() as con:
            filtered = read.latest_filtered(con, self.req.filter, unfiltered)
        return processes.broadcast(filtered)
