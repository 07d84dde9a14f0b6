"""Presenting: the text every command prints, one formatter per kind of number, and the Streamlit app with
its charts. It reads through the layers below and computes no figure of its own; only the CLI is above it.
"""
