"""Another results file's finished runs, merged into this one by value: a cluster job's, or a machine's.

A sweep on a scheduler writes each job's runs to a file of its own (two processes on two nodes
cannot share one DuckDB file), and the files are merged when the jobs finish. The source is read
as `Store` reads any file: refused unless every object in it is a harness table, of a schema
version this harness knows (an older one through a migrated copy, the file left as it was), and
whole; and bounded in size. Its finished runs that are not here yet are copied table by table,
through this file's own column lists, in one transaction: all of them land, or none, and the
source is never written. Merging the same file twice adds nothing the second time.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import UsageError
from harness.store import connection, copy_rows, transaction
from harness.store.database import Store

# The tables a run writes, each keyed by run_id (docs/results.md). `examples` is shared between the
# runs of one dataset and tokenizer and is copied where this file lacks it; seed groups and
# reproductions belong to the command that made them, not to a run, and stay behind.
RUN_TABLES = ("runs", "models", "samples", "metrics", "scores", "curves", "continuations", "features")
MAX_SOURCE_BYTES = 16 << 30


def merge(source: Path, dest: Store) -> list[str]:
    """Copy `source`'s finished runs that `dest` lacks into `dest`; returns their run ids, oldest first."""
    source = Path(source)
    if not source.is_file():
        raise UsageError(f"no results file at {source}")
    if source.resolve() == dest.path.resolve():
        raise UsageError(f"{source} is the file being merged into")
    size = source.stat().st_size
    if size > MAX_SOURCE_BYTES:
        raise UsageError(f"results file {source} is {size / 2**30:.1f} GiB, over the {MAX_SOURCE_BYTES >> 30} GiB "
                         "a merge reads")
    with connection.reading(source) as src:
        ids = [r[0] for r in src.execute("SELECT run_id FROM runs WHERE status = 'finished' "
                                         "ORDER BY finished_at, run_id").fetchall()]
        with dest.writing() as con:
            have = {r[0] for r in con.execute("SELECT run_id FROM runs WHERE list_contains(?, run_id)",
                                              [ids]).fetchall()}
            new = [i for i in ids if i not in have]
            if not new:
                return []
            with transaction(con):
                for table in RUN_TABLES:
                    copy_rows(src, con, table, f'SELECT * FROM "{table}" WHERE list_contains(?, run_id)', [new])
                keys = [r[0] for r in con.execute("SELECT DISTINCT dataset_hash || '/' || tokenizer_key "
                                                  "FROM examples").fetchall()]
                copy_rows(src, con, "examples", "SELECT * FROM examples WHERE NOT list_contains(?, dataset_hash || '/' "
                      "|| tokenizer_key) AND (dataset_hash, tokenizer_key) IN (SELECT dataset_hash, tokenizer_key "
                      "FROM runs WHERE list_contains(?, run_id))", [[*keys, ""], new])
    return new

