"""Object discovery by hierarchical clustering (vosuite.unsupervised.clustering) against part C of the
SSL-UVOS fixture: key-frame attention distributions, symmetric KL, first-level counts, every merge
pass, final centroids and the label maps at tau 1.0 and 0.3."""

from __future__ import annotations

import pytest
import torch

from conftest import SHARED_ROOT, requires_shared
from vosuite.models.bba import BbAConfig, BetrayedByAttention
from vosuite.unsupervised.clustering import (
    attention_windows,
    discover_objects,
    key_frame_indices,
    kl_distance,
    queries_and_keys,
)

FIXTURE = SHARED_ROOT / "fixtures/ssl_uvos"
pytestmark = requires_shared("fixtures/ssl_uvos/weights.pt", "SSL-UVOS fixture")


@pytest.fixture(scope="module")
def case() -> dict:
    inputs = torch.load(FIXTURE / "inputs.pt", weights_only=True)
    weights = torch.load(FIXTURE / "weights.pt", weights_only=True)
    model = BetrayedByAttention(BbAConfig(backbone=None))
    model.load_state_dict({k: v.float() for k, v in weights.items()})
    return {"block": model.eval().temporal_transformer[0], "keys": inputs["clip_keys"].float(),
            "expected": torch.load(FIXTURE / "outputs_cluster.pt", weights_only=True)}


def test_key_frames() -> None:
    assert key_frame_indices(30, 10).tolist() == [0, 10, 20]
    assert key_frame_indices(21, 10).tolist() == [0, 10]  # the original's rule: trailing frames are never keys
    assert key_frame_indices(7, 10).tolist() == [0]  # short videos keep one key frame (the original crashes)


def test_attention_and_distance(case) -> None:
    expected = case["expected"]
    with torch.no_grad():
        q, k = queries_and_keys(case["block"], case["keys"], key_frame_indices(30, 10))
        windows = list(attention_windows(q, k, case["block"].attn.scale))
        distributions = torch.cat([d for _, d in windows])  # [1800, 180]
        distance = kl_distance(windows[0][1], windows[0][1])
    # measured: 5.2e-8 (attention), 4.8e-6 (distances: the original's no-epsilon cancellation, ~1e-5 expected)
    assert (windows[0][1] - expected["attn_rows_win0"]).abs().max().item() <= 1e-7
    assert (distributions.max(1).values - expected["attn_all_rowmax"]).abs().max().item() <= 1e-7
    assert torch.allclose(distributions.sum(1).double() - 1, expected["attn_all_rowsum_minus1"], atol=1e-6)
    assert (distance[:60] - expected["kl_win0_frame0_rows"]).abs().max().item() <= 1e-5


@pytest.mark.parametrize("tag", ["tau1", "tau0p3"])
def test_clustering_at_every_stage(case, tag: str) -> None:
    expected = case["expected"][tag]
    result = discover_objects(case["block"], case["keys"], tau=expected["tau"], ratio=10)
    assert result.first_level_counts == expected["first_level_counts"].tolist()
    assert [len(x) for x in result.merge_inputs] == [len(x) for x in expected["merge_inputs"]]
    assert len(result.merge_inputs) == expected["n_merge_passes"]
    for ours, theirs in zip(result.merge_inputs, expected["merge_inputs"], strict=True):
        assert (ours - theirs).abs().max().item() <= 1e-7  # measured 3.7e-8
    assert result.centroids.shape[0] == expected["K"]
    assert (result.centroids - expected["final_centroids"]).abs().max().item() <= 1e-7  # measured 2.2e-8
    assert torch.equal(result.labels - 1, expected["labels"].long())  # ids 1..K here, 0..K-1 there
