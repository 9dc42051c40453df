"""Betrayed by Attention training (Ding et al. 2023): the self-supervised losses
(:mod:`~vosuite.training.methods.bba.losses`). The method itself is not registered yet."""
