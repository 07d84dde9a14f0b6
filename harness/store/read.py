"""Every query that reads the results store, each a function of an open connection (`connection.reading`).

Rows or DataFrames, every filter a query parameter and never SQL text, and which runs count
(COUNTED_RUNS) defined once. The board, compare, reproduce and the app call these directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.contract.specs import ROLE_ORDER_SQL, ROLES
from harness.store.connection import tables

if TYPE_CHECKING:
    import pandas as pd

# ------------------------------------------------------------ which stored runs count

# What makes runs one board, for the app, `harness leaderboard`, publish, export and compare alike: the
# family with its arguments (pretrained and from-scratch weights are different boards), the dataset and
# its content, the preset, and --limit.
BOARD_KEYS = ["family", "family_args", "dataset", "preset", "dataset_hash", "example_limit"]
# A family run with its defaults stores '{}'; runs from before family arguments existed, NULL: one board.
FAMILY_ARGS_SQL = "coalesce(CAST(r.family_args AS VARCHAR), '{}')"


@dataclass(frozen=True)
class Filters:
    """What the app's sidebar (or `harness leaderboard --family`) narrows the runs to; None: everything."""

    family: Sequence[str] | None = None
    dataset: Sequence[str] | None = None
    method: Sequence[str] | None = None
    size: Sequence[str] | None = None
    access: Sequence[str] | None = None
    search: str | None = None

    def params(self) -> list:
        """COUNTED_RUNS's parameters, in its order."""
        def listed(v):
            return None if not v else list(v)
        return [listed(self.family), listed(self.family), listed(self.dataset), listed(self.dataset),
                listed(self.method), listed(self.method), listed(self.access), listed(self.access),
                self.search or None, self.search or "", listed(self.size), listed(self.size)]


NO_FILTERS = Filters()

# The runs that count, defined once: finished runs passing the filters, and where one seed of a method
# ran twice on a board, its latest run. Each with its student's size.
COUNTED_RUNS = f"""
    SELECT r.* REPLACE ({FAMILY_ARGS_SQL} AS family_args), mo.size AS student_size, mo.n_params AS student_params
    FROM runs r LEFT JOIN models mo ON mo.run_id = r.run_id AND mo.role = 'student'
    WHERE r.status = 'finished'
      AND (? IS NULL OR list_contains(?, r.family)) AND (? IS NULL OR list_contains(?, r.dataset))
      AND (? IS NULL OR list_contains(?, r.method_label)) AND (? IS NULL OR list_contains(?, r.teacher_access))
      AND (? IS NULL OR contains(lower(r.method_label || ' ' || r.method || ' ' || r.teacher_access), lower(?)))
      AND (? IS NULL OR list_contains(?, mo.size))
    QUALIFY row_number() OVER (
        PARTITION BY {', '.join(FAMILY_ARGS_SQL if k == 'family_args' else f'r.{k}' for k in BOARD_KEYS)},
                     r.method_label, r.seed
        ORDER BY r.finished_at DESC) = 1
"""


def frame(con, sql: str, params: Sequence = ()) -> pd.DataFrame:
    return con.execute(sql, list(params)).df()


def runs(con, filters: Filters = NO_FILTERS) -> pd.DataFrame:
    """The runs that count (COUNTED_RUNS), in board order."""
    return frame(con, COUNTED_RUNS + " ORDER BY family, dataset, method_label, seed", filters.params())


def latest_by_seed(con, family: str, dataset: str, method: str) -> list[tuple[int, str]]:
    """(seed, run id) of a method's unfiltered runs that count on this family and dataset, the latest per seed
    where several boards hold one (another preset, --limit): `harness compare`'s runs."""
    return con.execute(f"SELECT seed, arg_max(run_id, finished_at) FROM ({COUNTED_RUNS}) WHERE filter IS NULL "
                       "AND (method = ? OR method_label = ?) GROUP BY seed ORDER BY seed",
                       [*Filters(family=[family], dataset=[dataset]).params(), method, method]).fetchall()


def latest_finished(con, config_hash: str, require_features: bool = False) -> str | None:
    """The latest finished run with this config hash (and, if asked, the predictor's features), if any."""
    row = con.execute("SELECT r.run_id FROM runs r WHERE r.config_hash = ? AND r.status = 'finished' "
                      "AND (NOT ? OR EXISTS (SELECT 1 FROM features f WHERE f.run_id = r.run_id)) "
                      "ORDER BY r.finished_at DESC LIMIT 1", [config_hash, require_features]).fetchone()
    return row[0] if row else None


def failed_runs(con) -> pd.DataFrame:
    return frame(con, "SELECT run_id, family, dataset, method_label, seed, status, error, started_at FROM runs "
                      "WHERE status <> 'finished' ORDER BY started_at DESC")


def choices(con) -> dict[str, list[str]]:
    """The values each filter can take, from the finished runs."""
    def distinct(sql):
        return [r[0] for r in con.execute(sql).fetchall() if r[0] is not None]
    return {
        "family": distinct("SELECT DISTINCT family FROM runs WHERE status = 'finished' ORDER BY 1"),
        "dataset": distinct("SELECT DISTINCT dataset FROM runs WHERE status = 'finished' ORDER BY 1"),
        "method": distinct("SELECT DISTINCT method_label FROM runs WHERE status = 'finished' ORDER BY 1"),
        "access": distinct("SELECT DISTINCT teacher_access FROM runs WHERE status = 'finished' ORDER BY 1"),
        "size": distinct("SELECT DISTINCT mo.size FROM models mo JOIN runs r USING (run_id) "
                         "WHERE r.status = 'finished' AND mo.role = 'student' ORDER BY 1"),
    }


# ------------------------------------------------------------ figures


def run_metrics(con, run_ids: Sequence[str]) -> pd.DataFrame:
    """One row per run, one column per figure."""
    import pandas as pd

    long = frame(con, "SELECT run_id, name, value FROM metrics WHERE list_contains(?, run_id)", [list(run_ids)])
    if long.empty:
        return pd.DataFrame({"run_id": list(run_ids)})
    return long.pivot_table(index="run_id", columns="name", values="value", aggfunc="first").reset_index()


def metric_means(con, run_ids: Sequence[str], names: Sequence[str]) -> dict[str, float]:
    """Each named figure's mean over the runs (those the runs stored)."""
    return dict(con.execute("SELECT name, avg(value) FROM metrics WHERE list_contains(?, run_id) "
                            "AND list_contains(?, name) GROUP BY name", [list(run_ids), list(names)]).fetchall())


def blind_figures(con, run_ids: Sequence[str]) -> list[tuple[float, float, float]]:
    """Each run's blind-baseline AUC and its interval (`harness.measure.blind`), for the runs that stored one."""
    return con.execute("SELECT a.value, l.value, h.value FROM metrics a JOIN metrics l ON l.run_id = a.run_id "
                       "AND l.name = 'blind_auc_lo' JOIN metrics h ON h.run_id = a.run_id AND h.name = 'blind_auc_hi' "
                       "WHERE a.name = 'blind_auc' AND list_contains(?, a.run_id) ORDER BY a.run_id",
                       [list(run_ids)]).fetchall()


def statuses(con, run_ids: Sequence[str]) -> dict[str, str]:
    """Each stored run's status (running, finished, failed), by run id."""
    return dict(con.execute("SELECT run_id, status FROM runs WHERE list_contains(?, run_id)",
                            [list(run_ids)]).fetchall())


def metric_max(con, run_ids: Sequence[str], name: str) -> float | None:
    """A figure's largest value over the runs (a DP row's delta: every seed's is the same), or None."""
    [(value,)] = con.execute("SELECT max(value) FROM metrics WHERE list_contains(?, run_id) AND name = ?",
                             [list(run_ids), name]).fetchall()
    return value


def member_losses(con, run_ids: Sequence[str], role: str) -> pd.DataFrame:
    """A role's per-example losses over the runs, members and non-members: run_id, split, sample_id, loss,
    sample_logprob (probabilistic extraction's; NULL in runs stored before it), repeats, each run's
    examples in sample-id order (so a member is at one position in every run)."""
    return frame(con, "SELECT run_id, split, sample_id, loss, sample_logprob, repeats FROM samples "
                      "WHERE list_contains(?, run_id) "
                      "AND role = ? AND loss IS NOT NULL ORDER BY run_id, split, sample_id", [list(run_ids), role])


def features(con, run_id: str, names: Sequence[str]) -> list[tuple]:
    """A run's predictor rows, by sample id: (sample_id, *names, memorized_student).

    `names` are the predictor's feature columns (harness.measure.predict.FEATURES), checked
    against the table's columns, so no caller's text reaches the SQL.
    """
    known = tables(con).get("features", set())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"features has no column {unknown[0]!r}")
    return con.execute(f"SELECT sample_id, {', '.join(names)}, memorized_student FROM features "
                       "WHERE run_id = ? ORDER BY sample_id", [run_id]).fetchall()


def attack_auc_names(con, role: str = "student") -> list[str]:
    """A role's membership-attack AUCs (`auc_<attack>_<role>` in metrics), once attacks wrote them."""
    return [r[0] for r in con.execute("SELECT DISTINCT name FROM metrics WHERE name LIKE 'auc\\_%\\_' || ? "
                                      "ESCAPE '\\' ORDER BY 1", [role]).fetchall()]


def memorized(con, run_id: str, role: str) -> set[str]:
    """The members a role of the run memorized."""
    return {r[0] for r in con.execute("SELECT sample_id FROM samples WHERE run_id = ? AND role = ? "
                                      "AND split = 'member' AND memorized", [run_id, role]).fetchall()}


def baseline_repeats(con, run_ids: Sequence[str]) -> tuple[int, int, int, int]:
    """The baseline's members seen once and how many it memorized, then the same for repeated members,
    pooled over the runs' seeds (each seed's baseline counted once)."""
    return con.execute("""
        SELECT count(*) FILTER (WHERE repeats = 1), count(*) FILTER (WHERE repeats = 1 AND memorized),
               count(*) FILTER (WHERE repeats > 1), count(*) FILTER (WHERE repeats > 1 AND memorized)
        FROM (SELECT DISTINCT r.seed, s.sample_id, s.repeats, s.memorized FROM samples s JOIN runs r USING (run_id)
              WHERE list_contains(?, s.run_id) AND s.role = 'baseline' AND s.split = 'member')""",
                       [list(run_ids)]).fetchone()


def overlap(con, run_id: str) -> pd.DataFrame:
    """Members by which roles memorized them (UpSet-style): one row per non-empty combination."""
    return frame(con, f"""
        SELECT combo, count(*) AS members FROM (
            SELECT sample_id, string_agg(role, ' + ' ORDER BY {ROLE_ORDER_SQL})
                   FILTER (WHERE memorized) AS combo
            FROM samples WHERE run_id = ? AND split = 'member' GROUP BY sample_id)
        WHERE combo IS NOT NULL GROUP BY combo ORDER BY members DESC""", [run_id])


def k_extractability(con, run_ids: Sequence[str]) -> pd.DataFrame:
    """Share of members whose greedy continuation matches at least k suffix tokens, per k and role."""
    return frame(con, """
        WITH ks AS (SELECT r.run_id, r.method_label, unnest(range(1, r.suffix_len + 1)) AS k
                    FROM runs r WHERE list_contains(?, r.run_id))
        SELECT ks.method_label AS method, s.role, ks.k, avg((s.match_len >= ks.k)::INTEGER) AS share
        FROM ks JOIN samples s ON s.run_id = ks.run_id AND s.split = 'member'
        GROUP BY ks.method_label, s.role, ks.k ORDER BY method, role, k""", [list(run_ids)])


def member_log_probs(con, run_id: str) -> pd.DataFrame:
    """Per member and role whose text is stored: memorized, repeats, total log-probability, and the text."""
    return frame(con, """
        SELECT s.sample_id, s.role, s.memorized, s.repeats, -s.loss * (len(e.token_ids) - 1) AS log_prob, e.text
        FROM samples s JOIN runs r USING (run_id)
        JOIN examples e ON e.dataset_hash = r.dataset_hash AND e.tokenizer_key = r.tokenizer_key
                       AND e.sample_id = s.sample_id
        WHERE s.run_id = ? AND s.split = 'member' AND e.text IS NOT NULL""", [run_id])


def losses(con, run_id: str) -> pd.DataFrame:
    """Each role's per-example loss, member or not."""
    return frame(con, "SELECT role, split, loss FROM samples WHERE run_id = ? AND loss IS NOT NULL", [run_id])


def stored_attacks(con, run_id: str) -> list[str]:
    """The attacks whose ROC curves the run stored (empty for runs from before attacks existed)."""
    if "curves" not in tables(con):
        return []
    return [r[0] for r in con.execute("SELECT DISTINCT substr(curve, 5) FROM curves WHERE run_id = ? "
                                      "AND starts_with(curve, 'roc:') ORDER BY 1", [run_id]).fetchall()]


def attack_roc(con, run_id: str, attack: str) -> pd.DataFrame:
    """A stored attack's ROC per role, with the run's AUC for it."""
    return frame(con, "SELECT c.role, c.x AS fpr, c.y AS tpr, m.value AS auc FROM curves c LEFT JOIN metrics m "
                      "ON m.run_id = c.run_id AND m.name = 'auc_' || ? || '_' || c.role "
                      "WHERE c.run_id = ? AND c.curve = 'roc:' || ? ORDER BY c.role, c.i", [attack, run_id, attack])


# ------------------------------------------------------------ one run, one example


def examples_of(con, run_id: str, memorized_by: str | None = None, limit: int = 500) -> pd.DataFrame:
    """A run's members with each role's verdict, most-memorized first, for the drill-down picker."""
    return frame(con, """
        SELECT sample_id, any_value(repeats) AS repeats,
               bool_or(memorized) FILTER (WHERE role = 'teacher') AS teacher,
               bool_or(memorized) FILTER (WHERE role = 'baseline') AS baseline,
               bool_or(memorized) FILTER (WHERE role = 'student') AS student,
               max(match_len) FILTER (WHERE role = 'student') AS student_match
        FROM samples WHERE run_id = ? AND split = 'member' GROUP BY sample_id
        HAVING ? IS NULL OR bool_or(memorized AND role = ?)
        ORDER BY student DESC, student_match DESC, sample_id LIMIT ?""", [run_id, memorized_by, memorized_by, limit])


def run_row(con, run_id: str) -> dict:
    """The run's row of `runs`, by column, as DuckDB gives it (NULL is None)."""
    cur = con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id])
    return dict(zip([d[0] for d in cur.description], cur.fetchone()))


def run_ids_from(con, prefix: str) -> list[str]:
    """The stored run ids that start with `prefix`."""
    return [r[0] for r in con.execute("SELECT run_id FROM runs WHERE starts_with(run_id, ?) ORDER BY run_id",
                                      [prefix]).fetchall()]


def recent_run_ids(con, limit: int) -> list[str]:
    """The `limit` most recently started runs' ids, newest first."""
    return [r[0] for r in con.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT ?", [limit]).fetchall()]


def metrics(con, run_id: str) -> dict[str, float]:
    """The run's stored figures by name."""
    return dict(con.execute("SELECT name, value FROM metrics WHERE run_id = ?", [run_id]).fetchall())


def models(con, run_id: str) -> list[dict]:
    """The run's models, one row each by column, in role order."""
    cur = con.execute(f"SELECT * FROM models WHERE run_id = ? ORDER BY {ROLE_ORDER_SQL}", [run_id])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def repeat_counts(con, run_id: str) -> list[tuple]:
    """(repeats, role, members, memorized) for the members at each repetition count in training."""
    return con.execute("SELECT repeats, role, count(*), count(*) FILTER (memorized) FROM samples "
                       "WHERE run_id = ? AND split = 'member' GROUP BY ALL ORDER BY ALL", [run_id]).fetchall()


def source_run(con, run_id: str) -> str | None:
    """The run a filtered run's predictor came from (its filter's source_run), if any."""
    row = con.execute("SELECT json_extract_string(filter, '$.source_run') FROM runs WHERE run_id = ?",
                      [run_id]).fetchone()
    return row[0] if row else None


def member_overlap(con, run_id: str) -> tuple[int, int, int, int, int]:
    """Over the run's members: (members, memorized by all three roles, by teacher and baseline, by the
    teacher and not the baseline, by the student and teacher and not the baseline)."""
    return con.execute(
        "WITH m AS (SELECT sample_id, bool_or(memorized) FILTER (role = 'teacher') AS t, "
        "bool_or(memorized) FILTER (role = 'baseline') AS b, bool_or(memorized) FILTER (role = 'student') AS s "
        "FROM samples WHERE run_id = ? AND split = 'member' GROUP BY sample_id) "
        "SELECT count(*), count(*) FILTER (t AND b AND s), count(*) FILTER (t AND b), "
        "count(*) FILTER (t AND NOT b), count(*) FILTER (s AND t AND NOT b) FROM m", [run_id]).fetchone()


def member_verdicts(con, run_ids: Sequence[str]) -> list[tuple[str, str, str, bool]]:
    """(run_id, sample_id, role, memorized) of every member the runs tested: the clusters of a pooled share."""
    return con.execute("SELECT run_id, sample_id, role, memorized FROM samples WHERE list_contains(?, run_id) "
                       "AND split = 'member' ORDER BY run_id, sample_id, role", [list(run_ids)]).fetchall()


def example_values(con, students: Sequence[str], baselines: Sequence[str]) -> pd.DataFrame:
    """Per run, role and example (members and non-members): what a board's paired comparison rests on,
    the verdict, the suffix loss and the suffix's log-probability under top-k sampling; the students of
    the runs `students`, the baselines of the runs `baselines` (one run per seed holds a seed's baseline)."""
    return frame(con, "SELECT run_id, role, sample_id, split, repeats, memorized::DOUBLE AS memorized, suffix_loss, "
                      "sample_logprob FROM samples WHERE (role = 'student' AND list_contains(?, run_id)) "
                      "OR (role = 'baseline' AND list_contains(?, run_id)) ORDER BY run_id, role, sample_id",
                 [list(students), list(baselines)])


def shared_models(con, run_ids: Sequence[str]) -> list[tuple[str, int, str, str, str | None]]:
    """(run_id, seed, method_label, role, weights_sha256) of the runs' teachers and baselines: what the rows
    of a board at one seed must share."""
    return con.execute("SELECT r.run_id, r.seed, r.method_label, m.role, m.weights_sha256 FROM runs r JOIN models m "
                       "USING (run_id) WHERE list_contains(?, r.run_id) AND m.role IN ('teacher', 'baseline') "
                       "ORDER BY r.seed, m.role, r.method_label", [list(run_ids)]).fetchall()


def repeats_and_verdicts(con, run_id: str) -> list[tuple[int, bool]]:
    """(repeats, memorized by the student) for each member the run's predictor saw (its features)."""
    return con.execute("SELECT s.repeats, f.memorized_student FROM features f JOIN samples s ON "
                       "s.run_id = f.run_id AND s.sample_id = f.sample_id AND s.role = 'student' "
                       "WHERE f.run_id = ?", [run_id]).fetchall()


def predictor_rows(con, run_id: str) -> list[tuple[str, float, int, bool]]:
    """(sample_id, out-of-fold risk, repeats, memorized by the student) of each member the run's predictor
    scored (`harness predict`), in sample-id order."""
    return con.execute("SELECT f.sample_id, f.risk, s.repeats, f.memorized_student FROM features f JOIN samples s "
                       "ON s.run_id = f.run_id AND s.sample_id = f.sample_id AND s.role = 'student' "
                       "WHERE f.run_id = ? AND f.risk IS NOT NULL ORDER BY f.sample_id", [run_id]).fetchall()


def high_entropy_loss_gap(con, run_id: str) -> float | None:
    """Among members in the top quartile of zlib entropy, the student's mean loss minus the baseline's."""
    row = con.execute(
        "WITH q AS (SELECT quantile_cont(zlib_entropy, 0.75) AS cut FROM features WHERE run_id = ?) "
        "SELECT avg(s.loss) FILTER (s.role = 'student') - avg(s.loss) FILTER (s.role = 'baseline') "
        "FROM features f JOIN samples s ON s.run_id = f.run_id AND s.sample_id = f.sample_id CROSS JOIN q "
        "WHERE f.run_id = ? AND f.zlib_entropy >= q.cut", [run_id, run_id]).fetchone()
    return row[0] if row else None


def peers_at_seed(con, run_id: str) -> list[tuple]:
    """(method label, student memorization rate, the student's strongest attack AUC, student and baseline
    validation perplexity, trained with DP-SGD, its own recipe, run id) of each unfiltered run that counts
    (COUNTED_RUNS) on this run's board at its seed."""
    keys = " AND ".join(f"c.{k} IS NOT DISTINCT FROM me.{k}" for k in BOARD_KEYS)
    return con.execute(
        f"WITH me AS (SELECT * REPLACE ({FAMILY_ARGS_SQL} AS family_args) FROM runs r WHERE r.run_id = ?), "
        f"c AS ({COUNTED_RUNS}) "
        "SELECT c.method_label, max(m.value) FILTER (m.name = 'mem_rate_student'), "
        "max(m.value) FILTER (m.name LIKE 'auc\\_%\\_student' ESCAPE '\\'), "
        "max(m.value) FILTER (m.name = 'val_ppl_student'), max(m.value) FILTER (m.name = 'val_ppl_baseline'), "
        "count(m.value) FILTER (m.name = 'dp_noise_multiplier') > 0, any_value(c.own_recipe), any_value(c.run_id) "
        f"FROM c JOIN me ON {keys} AND c.seed = me.seed JOIN metrics m ON m.run_id = c.run_id "
        "WHERE c.filter IS NULL GROUP BY c.method_label ORDER BY c.method_label",
        [run_id, *NO_FILTERS.params()]).fetchall()


def strongest_attack_values(con, run_id: str) -> tuple[str, list[tuple]] | None:
    """The student's strongest attack (highest stored AUC) and, per example, (sample id, split, memorized,
    that attack's score), members first, each split by sample id; None without attack figures."""
    best = con.execute("SELECT name FROM metrics WHERE run_id = ? AND name LIKE 'auc\\_%\\_student' ESCAPE '\\' "
                       "AND value IS NOT NULL ORDER BY value DESC, name LIMIT 1", [run_id]).fetchone()
    if best is None:
        return None
    attack = best[0][len("auc_"):-len("_student")]
    rows = con.execute("SELECT s.sample_id, s.split, s.memorized, sc.score FROM samples s JOIN scores sc "
                       "ON sc.run_id = s.run_id AND sc.sample_id = s.sample_id AND sc.role = s.role AND sc.attack = ? "
                       "WHERE s.run_id = ? AND s.role = 'student' ORDER BY s.split, s.sample_id",
                       [attack, run_id]).fetchall()
    return attack, rows


def memorized_at_every(con, run_ids: Sequence[str], role: str) -> list[str]:
    """The members `role` memorized in every one of `run_ids` (a seed group's always-memorized set)."""
    return [r[0] for r in con.execute(
        "SELECT sample_id FROM samples WHERE list_contains(?, run_id) AND role = ? AND split = 'member' "
        "GROUP BY sample_id HAVING bool_and(memorized) AND count(*) = ? ORDER BY sample_id",
        [list(run_ids), role, len(run_ids)]).fetchall()]


def latest_filtered(con, by: str, source: str) -> str | None:
    """The latest finished run filtered by `by` whose predictor came from run `source`."""
    row = con.execute("SELECT run_id FROM runs WHERE status = 'finished' AND json_extract_string(filter, '$.by') = ? "
                      "AND json_extract_string(filter, '$.source_run') = ? ORDER BY finished_at DESC LIMIT 1",
                      [by, source]).fetchone()
    return row[0] if row else None


def example(con, run: dict, sample_id: str) -> tuple[list[int] | None, str | None]:
    """An example's token ids and text as the run tokenized it; None where withheld or absent."""
    row = con.execute("SELECT token_ids, text FROM examples WHERE dataset_hash = ? AND tokenizer_key = ? "
                      "AND sample_id = ?", [run["dataset_hash"], run["tokenizer_key"], sample_id]).fetchone()
    return row if row else (None, None)


def verdicts(con, run_id: str, sample_id: str) -> pd.DataFrame:
    """One example's row of `samples` per role, in role order."""
    return frame(con, "SELECT * EXCLUDE (run_id, sample_id) FROM samples WHERE run_id = ? AND sample_id = ? "
                      f"ORDER BY {ROLE_ORDER_SQL}", [run_id, sample_id])


def continuations(con, run_id: str, sample_id: str) -> dict[str, list[int]]:
    """Each role's stored greedy continuation of the example: the run's own, else that of a run sharing
    the role's checkpoint (a teacher or baseline is stored once)."""
    if "continuations" not in tables(con):
        return {}
    out = {role: list(ids) for role, ids in con.execute(
        "SELECT role, token_ids FROM continuations WHERE run_id = ? AND sample_id = ?", [run_id, sample_id]).fetchall()}
    for role in sorted(set(ROLES) - set(out)):
        row = con.execute("SELECT c.token_ids FROM continuations c JOIN models m USING (run_id, role) "
                          "WHERE c.role = ? AND c.sample_id = ? AND m.artifact_key = (SELECT artifact_key "
                          "FROM models WHERE run_id = ? AND role = ?) LIMIT 1",
                          [role, sample_id, run_id, role]).fetchone()
        if row is not None:
            out[role] = list(row[0])
    return out


def attack_scores(con, run_id: str, sample_id: str) -> pd.DataFrame:
    """Each attack's score of one example, a row per role and a column per attack (empty if none stored)."""
    import pandas as pd

    if "scores" not in tables(con):
        return pd.DataFrame()
    df = frame(con, "SELECT role, attack, score FROM scores WHERE run_id = ? AND sample_id = ?", [run_id, sample_id])
    if df.empty:
        return df
    return df.pivot_table(index="role", columns="attack", values="score", aggfunc="first").reset_index()


def snapshot_note(con, kind: str, subject: str) -> str | None:
    """A published snapshot's notes (why a dataset's text was withheld, when it was published)."""
    if "snapshot_notes" not in tables(con):
        return None
    row = con.execute("SELECT note FROM snapshot_notes WHERE kind = ? AND subject = ?", [kind, subject]).fetchone()
    return row[0] if row else None


def vocab(con, tokenizer_key: str) -> list[str] | None:
    """A snapshot's tokenizer as text pieces, indexed by token id; None where it carries none."""
    if "vocab" not in tables(con):
        return None
    rows = con.execute("SELECT token_id, piece FROM vocab WHERE tokenizer_key = ? ORDER BY token_id",
                       [tokenizer_key]).fetchall()
    if not rows:
        return None
    out = [""] * (rows[-1][0] + 1)
    for i, p in rows:
        out[i] = p
    return out


def artifact_paths(con, run_id: str) -> list[str]:
    """Where the run's checkpoints were saved, where it recorded them."""
    return [r[0] for r in con.execute("SELECT artifact_path FROM models WHERE run_id = ? AND artifact_path IS NOT NULL",
                                      [run_id]).fetchall()]


def reproduction(con) -> tuple[dict, pd.DataFrame] | None:
    """The latest `harness reproduce` stored in this database: where it ran, and a row per finding.

    A file that lacks the verdict columns (schema version 5's, read as it is) reads them as NULL."""
    found = tables(con).get("reproductions")
    if found is None:
        return None
    latest = con.execute("SELECT reproduction_id, family, dataset, preset, created_at FROM reproductions "
                         "ORDER BY created_at DESC, reproduction_id DESC LIMIT 1").fetchone()
    if latest is None:
        return None
    meta = dict(zip(("reproduction_id", "family", "dataset", "preset", "created_at"), latest))
    columns = ["finding", "claim", "published", "source", "unit", "n", "mean", "lo", "hi", "holds",
               "verdict", "requested", "figure", "magnitude", "caveat"]
    select = ", ".join(c if c in found else f"NULL AS {c}" for c in columns)
    rows = con.execute(f"SELECT {select} FROM reproductions WHERE reproduction_id = ? ORDER BY rowid",
                       [meta["reproduction_id"]]).df()
    return meta, rows
