"""The model registry (names only), the factory (create_model / list_models), `vosuite models`,
the shipped weights' sha256, model cards."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import vosuite
from vosuite import registry
from vosuite.checkpoints.files import file_sha256
from vosuite.checkpoints.shipped import shipped_path
from vosuite.cli import build_parser, main
from vosuite.errors import InputError
from vosuite.factory import model_config, save_model
from vosuite.inference.cores import preprocess
from vosuite.models import DEFORMABLE_VARIANTS, S2S, S2S_VARIANTS, VARIANTS, DeAOT
from vosuite.models.baseline import BASELINES
from vosuite.models.bba import BBA_VARIANTS
from vosuite.models.dino import DINO_VARIANTS
from vosuite.options import DEFAULT_MODEL
from vosuite.report_models import card_fields, model_rows


def test_every_network_config_has_one_registered_name() -> None:
    """Every variant has its name; the other names (other weights of a variant) say which."""
    tables = [*VARIANTS, *DEFORMABLE_VARIANTS, *S2S_VARIANTS, *BASELINES, *BBA_VARIANTS, *DINO_VARIANTS]
    weights_of_a_variant = {name for name in vosuite.list_models() if registry.get_spec(name).tag}
    assert weights_of_a_variant == {"deaot-t-deform.kd", "deaot-t-deform.sup", "deaot-t-deform.fast"}
    assert sorted(set(vosuite.list_models()) - weights_of_a_variant) == sorted(tables)
    assert vosuite.list_models("s2s") == list(S2S_VARIANTS)
    for name in vosuite.list_models():
        spec = registry.get_spec(name)
        assert model_config(name).name == spec.architecture
        assert spec.architecture in tables
        network = vosuite.create_model(name, weights=None) if spec.family != "dino" else None
        assert network is None or network.family == spec.family


def test_weight_variants_are_tags_with_their_old_names_as_aliases() -> None:
    fast = registry.get_spec("deaot-t-deform.fast")
    assert (fast.architecture, fast.tag, fast.weights) == ("deaot-t-deform", "fast", "deaot-t-deform.fast.pt")
    assert registry.get_spec("deaot-t-deform-fast") is fast and registry.get_spec("DeAOT_T_Deform-Fast") is fast
    assert "deaot-t-deform-fast" not in vosuite.list_models()


def test_tasks_are_typed() -> None:
    tasks = {name: registry.get_spec(name).task for name in vosuite.list_models()}
    assert {tasks["motion-saliency"], tasks["ellipse"], tasks["bba-vitt16"]} == {"unsupervised"}
    assert tasks["dino-pretrain-vitt16"] == "pre-training" and tasks["flow"] == tasks["deaot-l"] == "semi"
    assert vosuite.list_models(task="unsupervised") == ["ellipse", "motion-saliency", "bba-vits8", "bba-vits16",
                                                        "bba-vitt16", "bba-mnv2"]
    with pytest.raises(ValueError, match="task 'tracking'"):
        registry.register_model("x", "deaot", task="tracking")


def test_every_named_recipe_is_a_shipped_config_of_its_model() -> None:
    from vosuite.training.config import load_config

    repo = Path(__file__).resolve().parents[1]
    recipes = {name: registry.get_spec(name).training_recipe() for name in vosuite.list_models()}
    for name, recipe in recipes.items():
        if recipe and registry.get_spec(name).family in ("bba", "dino"):
            assert load_config(repo / recipe).model.name == name, recipe
    assert recipes["bba-vitt16"] == "configs/bba_vitt16_davis16.yaml"
    assert all((repo / recipe).is_file() for recipe in recipes.values() if recipe)


def test_lookup_ignores_case_and_underscores() -> None:
    assert registry.get_spec("DeAOT_T_Deform").name == "deaot-t-deform"
    with pytest.raises(InputError, match=r"unknown model 'deaot-xl'; known: deaot-t, .* \(see `vosuite models`\)"):
        registry.get_spec("deaot-xl")


def test_create_model_default_random_and_path(tmp_path: Path) -> None:
    shipped = vosuite.create_model("deaot-t-deform")
    assert isinstance(shipped, DeAOT) and not shipped.training and shipped.default_size == 240
    torch.manual_seed(0)
    random = vosuite.create_model("s2s-mnv2", weights=None)
    assert isinstance(random, S2S) and random.default_size is None
    path = save_model(random, tmp_path / "s2s.pt", inference_size=96)
    loaded = vosuite.create_model("s2s-mnv2", weights=path)
    assert loaded.default_size == 96
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in random.state_dict().items())
    with pytest.raises(InputError, match="no trained weights for deaot-b ship"):
        vosuite.create_model("deaot-b")
    with pytest.raises(InputError, match="holds s2s-mnv2 weights, not s2spp-mnv2"):
        vosuite.create_model("s2spp-mnv2", weights=path)


def test_shipped_weights_match_their_registered_sha256(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = registry.get_spec(DEFAULT_MODEL)
    assert file_sha256(shipped_path(spec.weights)) == spec.sha256
    damaged = dataclasses.replace(spec, sha256="0" * 64)
    monkeypatch.setitem(registry.MODELS, spec.name, damaged)
    with pytest.raises(InputError, match="sha256 .* differs from the registered 000000000000"):
        vosuite.create_model(spec.name)


def test_model_card_fields_and_rows() -> None:
    spec = registry.get_spec("deaot-t-deform")
    assert card_fields(spec)["dev_jf"] == "0.701"
    assert card_fields(registry.get_spec("deaot-b")) == {}
    row = next(r for r in model_rows("deaot") if r.name == "deaot-t-deform")
    assert (row.ships, row.size, row.dev_jf, row.chair_jf, row.default) == (True, 240, "0.701", "0.208", True)
    flow = next(r for r in model_rows("baseline") if r.name == "flow")
    assert (flow.ships, flow.parameters, flow.dev_jf, flow.chair_jf) == (None, 0, "0.378", "0.756")
    assert row.parameters == sum(p.numel() for p in vosuite.create_model("deaot-t-deform").parameters())


def test_vosuite_models_prints_the_table(capsys: pytest.CaptureFixture) -> None:
    assert main(["models", "--family", "deaot"]) == 0
    out = capsys.readouterr().out
    assert "deaot-t-deform (default)" in out and "0.701" in out and "ships" in out and "s2spp" not in out
    assert main(["models", "--family", "xyz"]) == 2


def test_cli_help_points_to_the_model_list_without_importing_torch() -> None:
    segment = build_parser()._subparsers._group_actions[0].choices["segment"]
    help_text = " ".join(segment.format_help().split())
    assert "`vosuite models` lists them" in help_text and f"default {DEFAULT_MODEL}" in help_text
    code = "import sys, vosuite.cli; vosuite.cli.build_parser(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_preprocessing_follows_each_family() -> None:
    import numpy as np

    rgb = np.zeros((480, 854, 3), np.uint8)
    torch.manual_seed(0)
    assert tuple(preprocess(vosuite.create_model("s2s-mnv2", weights=None), rgb).shape) == (1, 3, 256, 448)
    deaot = vosuite.create_model("deaot-t-deform")
    assert tuple(preprocess(deaot, rgb).shape) == (1, 3, 481, 849)
    assert tuple(preprocess(deaot, rgb, size=240).shape) == (1, 3, 241, 433)
