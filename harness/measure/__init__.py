"""Measuring: extraction, the memorization figures, membership attacks, the predictor, and
summaries over seeds.
"""
