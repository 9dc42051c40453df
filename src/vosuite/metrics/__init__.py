"""DAVIS-style evaluation: region similarity J, boundary accuracy F, and their statistics."""

from vosuite.metrics.boundary import boundary_f_measure, boundary_map, boundary_tolerance
from vosuite.metrics.region import region_similarity
from vosuite.metrics.statistics import SequenceStatistics, decay_bin_edges, mean_recall_decay

__all__ = [
    "SequenceStatistics",
    "boundary_f_measure",
    "boundary_map",
    "boundary_tolerance",
    "decay_bin_edges",
    "mean_recall_decay",
    "region_similarity",
]
