"""Distillation of deformable attention (Truong et al. 2024, arXiv 2401.13937): the losses
(:mod:`~vosuite.training.methods.distill.losses`) and the method (``method: distill``,
:mod:`~vosuite.training.methods.distill.method`)."""
