"""The leaderboard from a checkout: `streamlit run app.py [-- --db FILE]`, what Streamlit's hosting and
Hugging Face Spaces run (docs/leaderboard.md, "Serving a board").

A thin door to the packaged app (`harness/present/app.py`, which `harness app` serves from an
install): it reads the boards in `leaderboards/` here, or `--db`. Run as a module, not imported,
so that Streamlit's rerun on every interaction runs the page again.
"""

import runpy

runpy.run_module("harness.present.app", run_name="__main__")
