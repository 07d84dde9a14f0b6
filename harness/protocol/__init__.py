"""The protocol and its stages: a request resolved into plugins and arguments, the stages in order
through the cache, the provenance rows, reference models, the filter rerun; and what runs many
protocols (seeds, sweeps, `harness reproduce`) or prices one (`harness plan`).
"""
