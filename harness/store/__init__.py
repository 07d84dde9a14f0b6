"""The results store: DuckDB schema, writes, reads and its named migrations; the figures' labels.
"""
