"""VOS datasets: DAVIS-2016/2017, YouTube-VOS 2018/2019, generic folders, single videos."""

from vosuite.datasets.base import Dataset, VideoRecord, natural_sorted, read_binary_0_255
from vosuite.datasets.davis import Davis2016, Davis2017
from vosuite.datasets.generic import GenericFolder, single_video
from vosuite.datasets.registry import DATASETS, open_dataset
from vosuite.datasets.youtubevos import YouTubeVOS

__all__ = [
    "DATASETS",
    "Dataset",
    "Davis2016",
    "Davis2017",
    "GenericFolder",
    "VideoRecord",
    "YouTubeVOS",
    "natural_sorted",
    "open_dataset",
    "read_binary_0_255",
    "single_video",
]
