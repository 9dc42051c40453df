"""Betrayed by Attention training (Ding et al. 2023): the self-supervised losses
(:mod:`~vosuite.training.methods.bba.losses`) and the method (``method: bba``,
:mod:`~vosuite.training.methods.bba.method`)."""
