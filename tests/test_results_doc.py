"""docs/results.md lists exactly the tables and columns a new results file has: the public interface cannot drift."""

from __future__ import annotations

import re

import duckdb

from harness.store import migrations
from tests.conftest import ROOT

DOC = ROOT / "docs" / "results.md"


def documented() -> dict[str, list[str]]:
    """{table: [column, ...]} from the Results tables section's table: its first and third cells."""
    section = DOC.read_text().split("## Results tables", 1)[1].split("\n## ", 1)[0]
    found: dict[str, list[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = re.fullmatch(r"`(\w+)`", cells[0]) if line.startswith("|") and len(cells) >= 3 else None
        if name:
            assert name.group(1) not in found, f"docs/results.md lists table {name.group(1)} twice"
            found[name.group(1)] = re.findall(r"`(\w+)`", cells[2])
    return found


def new_file() -> dict[str, list[str]]:
    con = duckdb.connect()
    try:
        migrations.upgrade(con, 0, ROOT / "new.duckdb")
        return {t: [c for (c,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                                              "ORDER BY column_index", [t]).fetchall()]
                for (t,) in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY table_oid").fetchall()}
    finally:
        con.close()


def test_every_table_is_documented_and_nothing_else():
    doc, schema = documented(), new_file()
    assert sorted(set(schema) - set(doc)) == [], "docs/results.md does not document these tables"
    assert sorted(set(doc) - set(schema)) == [], "docs/results.md documents tables a new file does not have"


def test_every_column_is_documented_in_its_order_and_nothing_else():
    doc, schema = documented(), new_file()
    for table, columns in schema.items():
        listed = doc.get(table, [])
        assert sorted(set(columns) - set(listed)) == [], f"docs/results.md: {table} lacks these columns"
        assert sorted(set(listed) - set(columns)) == [], f"docs/results.md: {table} has no such columns"
        assert listed == columns, f"docs/results.md: {table}'s columns are not in the schema's order"


def test_the_parser_sees_the_table():
    doc = documented()
    assert doc["runs"][:2] == ["run_id", "family"] and doc["schema_info"] == ["version"]
