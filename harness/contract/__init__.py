"""The public contract: what a plugin registers (specs), the hooks it implements, and the helpers it may
use (divergences, hub families, dataset sources). Plugins import these through `from harness import ...`;
this package imports only `harness.runtime` and `harness.errors`.
"""
