"""The leaderboard: the one ranking query, reports, comparisons, published boards, submission
bundles, and the Streamlit app. The top of the package: nothing but the CLI imports it.
"""
