"""VOS datasets: DAVIS-2016/2017, YouTube-VOS 2018/2019, generic folders, single videos."""
