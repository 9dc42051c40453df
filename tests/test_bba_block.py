"""Betrayed by Attention's spatio-temporal block (vosuite.models.bba) against part A of the SSL-UVOS
fixture (fixtures/ssl_uvos/README.md): block tokens, attn_temporal (heads averaged, CLS rows and
columns removed), raw per-head rows; and the block's facts (eps 1e-5, no qkv bias, no position
embedding: permutation-equivariant)."""

from __future__ import annotations

import pytest
import torch

from conftest import SHARED_ROOT, requires_shared
from vosuite.models.bba import BbAConfig, BetrayedByAttention

FIXTURE = SHARED_ROOT / "fixtures/ssl_uvos"
pytestmark = requires_shared("fixtures/ssl_uvos/weights.pt", "SSL-UVOS fixture")
#: Measured largest differences from the original in float32 (the original's own float32 vs float64
#: difference is 7.0e-7 on tokens and 2.3e-8 on attention, so these are rounding): tokens 1.19e-6
#: (|tokens| <= 6.7), attn_temporal 2.2e-8, per-head rows 5.6e-8.
TOKENS_ATOL, ATTN_ATOL, HEADS_ATOL = 1.5e-6, 3e-8, 7e-8


@pytest.fixture(scope="module")
def run() -> dict:
    inputs = torch.load(FIXTURE / "inputs.pt", weights_only=True)
    outputs = torch.load(FIXTURE / "outputs_st.pt", weights_only=True)
    weights = torch.load(FIXTURE / "weights.pt", weights_only=True)
    model = BetrayedByAttention(BbAConfig(backbone=None))
    model.load_state_dict({k: v.float() for k, v in weights.items()})  # exactly the original's 11 keys
    model.eval()
    with torch.no_grad():
        out = model(inputs["st_tokens"].float()[None])  # [1, T=3, 1 + 242, 384]
    return {"in": inputs, "expected": outputs, "out": out, "model": model, "weights": weights}


def test_block_tokens_and_slots(run) -> None:
    out, expected = run["out"], run["expected"]
    assert (out.tokens[0] - expected["st_out_tokens"]).abs().max().item() <= TOKENS_ATOL
    assert list(out.slots.shape) == expected["slot_shape"] == [1, 3, 242, 384]
    assert torch.equal(out.slots, out.tokens[:, :, 1:])


def test_attn_temporal_and_heads(run) -> None:
    out, expected = run["out"], run["expected"]
    assert out.attn_temporal.shape == (1, 726, 726)
    assert (out.attn_temporal[0] - expected["attn_temporal"]).abs().max().item() <= ATTN_ATOL
    rows = out.attention[0][:, expected["attn_heads_rows_idx"]]  # [8, 3, 729]
    assert (rows - expected["attn_heads_rows"]).abs().max().item() <= HEADS_ATOL
    sums = out.attn_temporal[0].sum(1)  # CLS columns removed, rows not renormalised
    assert sums.min().item() > 0.99 and sums.max().item() < 1.0


def test_block_facts(run) -> None:
    block = run["model"].temporal_transformer[0]
    assert block.norm1.eps == 1e-5 and block.attn.qkv.bias is None and block.attn.num_heads == 8
    assert set(run["model"].state_dict()) == set(run["weights"])
    tokens = run["in"]["st_tokens"].float()[None].reshape(1, 729, 384)
    order = torch.randperm(729, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain, _ = block(tokens)
        shuffled, _ = block(tokens[:, order])
    assert torch.allclose(shuffled, plain[:, order], atol=1e-5)  # no position embedding
