"""DeAOT training: the clip forward, AOT's losses and the method (``method: deaot``)."""
