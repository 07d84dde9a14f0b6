"""Training: the loop under accelerate, a KD method bound to its teacher, and the on-policy sampler.
"""
