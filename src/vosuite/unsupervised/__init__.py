"""Unsupervised object discovery (no masks given):

* :mod:`~vosuite.unsupervised.clustering`: Betrayed by Attention's hierarchical clustering of the
  spatio-temporal block's attention into proposals;
* :mod:`~vosuite.unsupervised.baselines`: the training-free proposals (centred ellipse, motion saliency);
* :mod:`~vosuite.unsupervised.discoverer`: :class:`~vosuite.unsupervised.discoverer.Discoverer`, the
  runner of ``vosuite discover`` (a video in, one proposal map per frame out).
"""
