"""DISTRIBUTED (2 CPU processes, gloo): ``torch.distributed.run --nproc_per_node 2 -m vosuite infer``
splits the videos over the ranks and writes exactly the files of one process (same names, same
bytes), with one manifest that a later ``--overwrite`` accepts. About 15 s."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from vosuite.cli import main
from vosuite.datasets.synthetic import SyntheticClipConfig, write_clip
from vosuite.distributed import DistContext, shard
from vosuite.io.output import MANIFEST_NAME


def test_shard_is_round_robin() -> None:
    names = ["a", "b", "c", "d", "e"]
    assert [shard(names, DistContext(rank=r, world_size=2)) for r in range(2)] == [["a", "c", "e"], ["b", "d"]]
    assert shard(names, DistContext()) == names


def test_two_processes_write_what_one_process_writes(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for index in range(3):
        write_clip(root, SyntheticClipConfig(name=f"clip{index}", num_frames=4, height=48, width=64, seed=index))
    single, double = tmp_path / "single", tmp_path / "double"
    assert main(["infer", "--dataset", "generic", "--root", str(root), "--out", str(single), "--model", "copy-first",
                 "--no-progress", "--threads", "1"]) == 0
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
               "vosuite.cli", "infer", "--dataset", "generic", "--root", str(root), "--out", str(double),
               "--model", "deaot-t-deform", "--no-progress", "--threads", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=200)
    assert done.returncode == 0, done.stderr[-3000:]
    assert main(["infer", "--dataset", "generic", "--root", str(root), "--out", str(single), "--model",
                 "deaot-t-deform", "--no-progress", "--threads", "1", "--overwrite"]) == 0
    files = sorted(p.relative_to(single) for p in single.rglob("*.png"))
    assert len(files) == 12 and files == sorted(p.relative_to(double) for p in double.rglob("*.png"))
    for relative in files:
        assert (single / relative).read_bytes() == (double / relative).read_bytes(), relative
    listed = sorted((double / MANIFEST_NAME).read_text().split())
    assert listed == sorted(str(p) for p in files)
    assert main(["infer", "--dataset", "generic", "--root", str(root), "--out", str(double), "--model", "copy-first",
                 "--no-progress", "--threads", "1", "--overwrite"]) == 0
