"""Configuration: which plugins are active (the plugin manager) and the presets (registry.toml read over
the package's defaults.toml). Imports the contract and the runtime.
"""
