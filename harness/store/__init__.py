"""The results store: DuckDB schema, writes, reads and its named migrations; the figures' labels.

`transaction` is here, below every module of the store, because migrations, writes and merges
all need it; it imports nothing, so `harness --help` importing the labels loads no DuckDB.
"""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def transaction(con):
    """The block's statements as one: committed at its end, rolled back on any error (Ctrl-C included)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        rollback(con)
        raise


def rollback(con) -> None:
    """Roll back if a transaction is still open: a failed COMMIT (a full disk) has already ended it,
    and its error, not "no transaction is active", is the one to report."""
    try:
        con.execute("ROLLBACK")
    except Exception:  # DuckDB's error for no open transaction; named loosely so that this imports nothing
        pass
