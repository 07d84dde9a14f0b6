"""The published boards: `<name>.toml`, a board's definition, and `<name>.duckdb`, its snapshot.

Package data, installed as `harness_leaderboards` (as `plugins/` is `harness_plugins`): `harness app`
and `harness leaderboard` find them in a wheel install; `harness leaderboard publish` writes them
only in a checkout (docs/leaderboard.md).
"""
