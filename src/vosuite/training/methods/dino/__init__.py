"""DINO self-distillation pre-training of a ViT (Caron et al. 2021, arXiv 2104.14294): the losses
and schedules (:mod:`~vosuite.training.methods.dino.losses`) and the method (``method: dino``,
:mod:`~vosuite.training.methods.dino.method`)."""
