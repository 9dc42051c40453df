"""Every weight format vosuite reads or writes, and the conversions between them; no network is
built here (:mod:`vosuite.factory` builds and loads):

* :mod:`~vosuite.checkpoints.files`: reading any checkpoint file safely (``weights_only=True``), digests;
* :mod:`~vosuite.checkpoints.state_dict`: the tensor dict inside a file, strict loading into a module;
* :mod:`~vosuite.checkpoints.vosuite_format`: vosuite's own model checkpoint (config + weights);
* :mod:`~vosuite.checkpoints.int8`, :mod:`~vosuite.checkpoints.shared`: int8 and shared tensors of
  shipped files; :mod:`~vosuite.checkpoints.shipped`: where those files live;
* :mod:`~vosuite.checkpoints.dino`, :mod:`~vosuite.checkpoints.imagenet`: DINO ViT and ImageNet
  MobileNetV2 conversions (aot-benchmark files read as plain state dicts);
* :mod:`~vosuite.checkpoints.resume`: training's resume file (``last.pt``).
"""
