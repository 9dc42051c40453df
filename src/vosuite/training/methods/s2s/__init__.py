"""S2S / S2S++ training: the RS2S multi-task loss and the method (``method: s2s``)."""
