"""The unsupervised protocol's two matchings against part D of the SSL-UVOS fixture: the official
per-sequence Hungarian matching (global J&F 0.52110) and the fork's per-frame matching behind
Betrayed by Attention's numbers (`vosuite eval --per-frame-matching`, 0.66698)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SHARED_ROOT, requires_shared, write_predictions, write_tree
from vosuite.cli import main
from vosuite.datasets import open_dataset
from vosuite.metrics.evaluator import EvaluationConfig, Evaluator

FIXTURE = SHARED_ROOT / "fixtures/ssl_uvos"
pytestmark = requires_shared("fixtures/ssl_uvos/outputs_davis.pt", "SSL-UVOS fixture")


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict:
    inputs = torch.load(FIXTURE / "inputs.pt", weights_only=True)
    root = tmp_path_factory.mktemp("part_d")
    write_tree(root / "gt", {"synth": list(inputs["davis_gt_ids"].numpy())})
    write_predictions(root / "pred", "synth", list(inputs["davis_proposal_ids"].numpy()))
    return {"root": root, "expected": torch.load(FIXTURE / "outputs_davis.pt", weights_only=True)}


def evaluate(case: dict, per_frame: bool):
    videos = list(open_dataset("davis2017", case["root"] / "gt", split="val"))
    config = EvaluationConfig(task="unsupervised", per_frame_matching=per_frame, max_proposals=300)
    return Evaluator(config).evaluate(videos, case["root"] / "pred")


@pytest.mark.parametrize("protocol, per_frame", [("official", False), ("fork", True)])
def test_matchings_reproduce_their_evaluators(case: dict, protocol: str, per_frame: bool) -> None:
    expected = case["expected"][protocol]
    result = evaluate(case, per_frame)
    assert result.global_scores()["J&F-Mean"] == pytest.approx(float(expected["JF_mean_global"]), abs=1e-15)
    rows = sorted(result.objects, key=lambda obj: obj.object_id) if per_frame else sorted(
        result.objects, key=lambda obj: obj.matched_proposal)  # the original's rows: ascending proposal
    j_rows = np.stack([obj.j_per_frame for obj in rows])
    f_rows = np.stack([obj.f_per_frame for obj in rows])
    assert np.allclose(j_rows, expected["J_rows"].numpy(), rtol=0, atol=1e-15)
    assert np.allclose(f_rows, expected["F_rows"].numpy(), rtol=0, atol=1e-15)
    assert np.allclose([obj.j.mean for obj in rows], expected["J_M"].numpy(), rtol=0, atol=1e-15)
    assert np.allclose([obj.f.decay for obj in rows], expected["F_D"].numpy(), rtol=0, atol=1e-15)


def test_cli_flag(case: dict, capsys) -> None:
    args = ["eval", "--gt", str(case["root"] / "gt"), "--pred", str(case["root"] / "pred"), "--task",
            "unsupervised", "--max-proposals", "300", "--no-progress"]
    assert main(args + ["--per-frame-matching"]) == 0
    assert "0.667" in capsys.readouterr().out
    assert main(["eval", "--gt", str(case["root"] / "gt"), "--pred", str(Path(case["root"]) / "pred"),
                 "--per-frame-matching", "--no-progress"]) == 2
