"""The results store: DuckDB schema, writes, reads and its named migrations; the figures' labels.

`transaction` and `copy_rows` are here, below every module of the store, because migrations, writes,
merges and publishing need them; they import nothing, so `harness --help` importing the labels loads no DuckDB.
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


def copy_rows(src, con, table: str, select: str, params: list | None = None) -> None:
    """Rows of `select` on another file's connection `src` into `table` here, by value, through this
    file's own column list: a merge's source or a staged bundle never names the columns written."""
    names = [r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE database_name = "
                                       "current_database() AND table_name = ? ORDER BY column_index",
                                       [table]).fetchall()]
    cols = ", ".join(f'"{n}"' for n in names)
    rows = src.sql(f"SELECT {cols} FROM ({select})", params=params).to_arrow_table()
    con.register("incoming", rows)
    try:
        con.execute(f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM incoming')
    finally:
        con.unregister("incoming")
