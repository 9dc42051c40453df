"""Training: one engine (:mod:`~vosuite.training.engine`), one folder per method
(:mod:`~vosuite.training.methods`), the data pipeline (:mod:`~vosuite.training.data`) and
in-memory validation (:mod:`~vosuite.training.validation`)."""
