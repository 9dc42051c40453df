"""The Method API: method config sections, frozen auxiliary networks, unlabelled data, in-memory
validation (semi-supervised and unsupervised, equal to `vosuite eval`), resume on another device,
and, for every registered method, a loss that falls when over-fitting one clip."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from vosuite.checkpoints.resume import LAST, load_training_checkpoint
from vosuite.datasets import open_dataset
from vosuite.datasets.synthetic import SyntheticClipConfig, write_clip
from vosuite.errors import InputError
from vosuite.evaluate import EvalRequest, run_eval
from vosuite.factory import create_model
from vosuite.metrics.evaluator import EvaluationConfig
from vosuite.segment import Segmenter
from vosuite.training.config import load_config, save_config
from vosuite.training.data import collate_clips, labelled_clips
from vosuite.training.data.unlabelled import UnlabelledClipConfig, UnlabelledClipDataset, unlabelled_clips
from vosuite.training.engine import Trainer
from vosuite.training.methods import list_methods, method_class
from vosuite.training.methods.base import TrainingData
from vosuite.training.methods.deaot.method import DeAOTMethod
from vosuite.training.validation import validate

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"


@pytest.fixture(scope="module")
def clip_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips"), SyntheticClipConfig(num_frames=8, height=72, width=96))


def smoke(clip_root: Path, *overrides: str):
    return load_config(SMOKE, [f"data.root={clip_root}", f"val.root={clip_root}", "train.progress=false",
                               *overrides])


# -- config sections --------------------------------------------------------------------------------


def test_method_sections_are_typed_and_round_trip(tmp_path: Path) -> None:
    config = load_config(SMOKE, ["deaot.top_k_percent=0.3", "deaot.seq_training_freeze=[a,b]"])
    assert config.method_options.top_k_percent == pytest.approx(0.3)
    assert config.method_options.seq_training_freeze == ["a", "b"]
    saved = save_config(config, tmp_path / "c.yaml")
    assert "deaot:" in saved.read_text() and "method_options" not in saved.read_text()
    assert load_config(saved) == config
    with pytest.raises(InputError, match="deaot: unknown key"):
        load_config(SMOKE, ["deaot.nope=1"])
    with pytest.raises(InputError, match="unknown training method 'xyz'; known: deaot, s2s, distill, bba"):
        load_config(SMOKE, ["method=xyz"])
    with pytest.raises(InputError, match="s2s: options of method s2s"):
        load_config(SMOKE, ["s2s.objects=one"])


def test_method_options_live_in_the_methods_section_only(tmp_path: Path) -> None:
    """A method's option under ``train:`` is an unknown key there (one line naming it)."""
    config = tmp_path / "new.yaml"
    config.write_text("method: deaot\ntrain:\n  total_steps: 3\ndeaot:\n  top_k_percent: 0.4\n")
    assert load_config(config).method_options.top_k_percent == pytest.approx(0.4)
    old = tmp_path / "old.yaml"
    old.write_text("method: deaot\ntrain:\n  total_steps: 3\n  top_k_percent: 0.4\n")
    with pytest.raises(InputError, match="top_k_percent"):
        load_config(old)


def test_every_method_is_registered_in_one_place() -> None:
    assert list_methods() == ["deaot", "s2s", "distill", "bba", "dino"]
    for name in list_methods():
        assert method_class(name).name == name


# -- a method with a frozen teacher on unlabelled-style data -------------------------------------


class TeacherStudent(DeAOTMethod):
    """A toy method: DeAOT training plus an L2 pull of the student's logits towards a frozen teacher's."""

    def auxiliary_modules(self) -> dict[str, nn.Module]:
        torch.manual_seed(1)
        self.teacher = create_model("deaot-t", weights=None)
        return {"teacher": self.teacher}

    def training_step(self, model, batch, step):
        loss, logs = super().training_step(model, batch, step)
        with torch.no_grad():
            target = self.teacher.encode_image(batch["frames"][:, 0])[-1]
        pull = (model.encode_image(batch["frames"][:, 0])[-1] - target).pow(2).mean()
        logs["pull"] = float(pull.detach())
        return loss + pull, logs


def test_auxiliary_modules_stay_frozen_and_out_of_checkpoints(clip_root: Path, tmp_path: Path) -> None:
    config = smoke(clip_root, "train.total_steps=3", "train.checkpoint_every=1")
    method = TeacherStudent(config)
    trainer = Trainer(config, method=method, run_dir=tmp_path / "run")
    before = {k: v.clone() for k, v in method.teacher.state_dict().items()}
    trainer.fit()
    teacher = trainer.auxiliary["teacher"]
    assert teacher is method.teacher and not teacher.training
    assert not any(p.requires_grad or p.grad is not None for p in teacher.parameters())
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    assert all(not name.startswith("teacher") for name in dict(trainer.wrapped.named_parameters()))
    state = load_training_checkpoint(tmp_path / "run" / LAST)
    assert set(state["model"]) == set(trainer.model.state_dict())  # the student only
    assert set(state["ema"]["shadow"]) <= set(trainer.model.state_dict())
    assert all("pull" in logs for logs in trainer.history)


def test_unlabelled_clips_and_plain_frames(clip_root: Path) -> None:
    videos = list(open_dataset("generic", clip_root))
    clips = UnlabelledClipDataset(videos, UnlabelledClipConfig(num_frames=3, size=(33, 49), seed=4))
    sample = clips[0]
    assert sample["frames"].shape == (3, 3, 33, 49) and sample["frames"].dtype == torch.float32
    assert "labels" not in sample and sample["frame_indices"].shape == (3,)
    again = UnlabelledClipDataset(videos, UnlabelledClipConfig(num_frames=3, size=(33, 49), seed=4))[0]
    assert torch.equal(sample["frames"], again["frames"])  # a pure function of (seed, epoch, index)
    frames = unlabelled_clips(smoke(clip_root), num_frames=1)[0]
    assert frames["frames"].shape == (1, 3, 65, 65)


def test_training_data_hook_feeds_the_engine(clip_root: Path, tmp_path: Path) -> None:
    seen: list[list[int]] = []

    class Recording(DeAOTMethod):
        def build_data(self, model):
            data = labelled_clips(self.config, model.cfg.max_obj_num)

            def collate(samples):
                seen.append([s["index"] for s in samples])
                return collate_clips(samples)
            return TrainingData(data, collate)

    config = smoke(clip_root, "train.total_steps=2")
    Trainer(config, method=Recording(config), run_dir=tmp_path / "run").fit()
    assert seen == [[0, 1], [2, 3]]


# -- validation in memory ------------------------------------------------------------------------


def test_semi_supervised_validation_equals_vosuite_eval(clip_root: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("deaot-t", weights=None)
    config = smoke(clip_root)
    scores = validate(DeAOTMethod(config), model, config.val)
    Segmenter(model=model, size=config.val.size, progress=False).infer("generic", clip_root, tmp_path / "pred")
    result = run_eval(EvalRequest(ground_truth=clip_root, predictions=tmp_path / "pred", dataset="generic",
                                  show_progress=False))
    assert scores == {k: float(v) for k, v in result.global_scores().items()}
    assert 0 < scores["J&F-Mean"] < 1


class Proposals(DeAOTMethod):
    """An unsupervised toy: proposes the ground truth with its ids shifted (2 -> 1, 1 -> 3)."""

    validation_task = "unsupervised"

    def predict_video(self, model, video) -> Iterator[tuple[str, np.ndarray]]:
        for name in video.annotated_frames:
            labels = video.labels(name)
            yield name, np.select([labels == 1, labels == 2], [3, 1], 0).astype(np.uint8)


def test_unsupervised_validation_matches_proposals(clip_root: Path, tmp_path: Path) -> None:
    config = smoke(clip_root)
    scores = validate(Proposals(config), create_model("deaot-t", weights=None), config.val)
    videos = list(open_dataset("generic", clip_root))
    from vosuite.io.masks import write_mask

    for video in videos:
        for name, labels in Proposals(config).predict_video(None, video):
            write_mask(tmp_path / "pred" / video.name / f"{name}.png", labels)
    result = run_eval(EvalRequest(ground_truth=clip_root, predictions=tmp_path / "pred", dataset="generic",
                                  config=EvaluationConfig(task="unsupervised"), show_progress=False))
    assert scores == {k: float(v) for k, v in result.global_scores().items()}
    assert scores["J&F-Mean"] == 1.0


# -- resume on another device --------------------------------------------------------------------


def test_resume_loads_rng_states_on_the_cpu(clip_root: Path, tmp_path: Path, monkeypatch) -> None:
    """A checkpoint written on a GPU holds CUDA tensors; ``map_location=device`` would put the RNG
    states there too, which ``torch.set_rng_state`` refuses. Simulated: any map_location other than
    the CPU turns the loaded tensors into meta tensors (a device the RNG cannot use)."""
    config = smoke(clip_root, "train.total_steps=2", "train.checkpoint_every=1")
    trainer = Trainer(config, run_dir=tmp_path / "run")
    trainer.fit(stop_after=1)
    trainer._save()
    import vosuite.checkpoints.resume as checkpoint

    real_load = checkpoint.torch.load
    locations = []

    def load_elsewhere(path, map_location=None, **kwargs):
        locations.append(str(map_location))
        obj = real_load(path, map_location="cpu", **kwargs)
        if str(map_location) != "cpu":
            obj["rng"]["torch"] = obj["rng"]["torch"].to("meta")
        return obj

    monkeypatch.setattr(checkpoint.torch, "load", load_elsewhere)
    resumed = Trainer(config, run_dir=tmp_path / "run", resume=True)
    assert locations == ["cpu"] and resumed.step == 1
    with pytest.raises(NotImplementedError):  # what the old map_location=device load ran into
        checkpoint.set_rng_state({**load_elsewhere(tmp_path / "run" / LAST, "cuda")["rng"]})


# -- every method learns one clip ----------------------------------------------------------------


def over_fit(method, model: nn.Module, batch: dict, steps: int) -> list[dict[str, float]]:
    """``steps`` Adam steps (lr 1e-3) of the method's loss on one fixed batch; the logs of each."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    history = []
    for _ in range(steps):
        loss, logs = method.training_step(model, batch, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(logs)
    return history

#: method -> (config overrides, Adam steps on one clip, bound on mean(last 3 losses) / mean(first 3));
#: measured ratios: deaot 0.464, s2s 0.368
OVERFIT = {
    "deaot": (["model.name=deaot-t", "data.size=[65,65]"], 40, 0.48),
    "s2s": (["method=s2s", "model.name=s2s-mnv2", "model.encoder_freeze_at=0", "data.size=[64,64]"], 40, 0.38),
}


@pytest.mark.parametrize("name", list(OVERFIT))
def test_loss_falls_when_over_fitting_one_clip(name: str, clip_root: Path) -> None:
    overrides, steps, bound = OVERFIT[name]
    config = smoke(clip_root, "train.batch_size=1", "optim.lr=1e-3", "optim.weight_decay=0", *overrides)
    method = method_class(config.method)(config)
    torch.manual_seed(0)
    model = method.build_model()
    batch = collate_clips([{**method.build_data(model).dataset[0], "index": 0}])
    losses = [logs["loss"] for logs in over_fit(method, model, batch, steps)]
    assert all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-3:]) < bound * np.mean(losses[:3]), losses


# -- wall-clock budget ---------------------------------------------------------------------------


def test_time_budget_stops_cleanly_and_resumes(clip_root: Path, tmp_path: Path, capsys) -> None:
    from vosuite.cli import main
    from vosuite.factory import create_model
    from vosuite.training.config import parse_duration
    from vosuite.training.run_log import read_metrics

    assert parse_duration("1h30m") == 5400 and parse_duration("90") == 90 and parse_duration("2.5s") == 2.5
    with pytest.raises(InputError, match="not a duration"):
        parse_duration("soon")
    out = tmp_path / "runs"  # outside the checkout, as long runs should be
    code = main(["train", "--config", str(SMOKE), f"data.root={clip_root}", f"val.root={clip_root}",
                 "train.total_steps=500", "train.time_budget=1.5s", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    run = next(out.iterdir())
    assert "time budget 1.5s reached" in text and f"--resume {run}" in text
    step = load_training_checkpoint(run / LAST)["step"]
    assert 0 < step < 500 and (run / "latest.pt").is_file() and not (run / "final.pt").exists()
    assert create_model(weights=run / "latest.pt").cfg.name == "deaot-t"
    stops = [row for row in read_metrics(run) if row.get("kind") == "stop"]
    assert len(stops) == 1 and stops[0]["step"] == step
    assert main(["train", "--resume", str(run), f"train.total_steps={step + 2}", "train.time_budget=null"]) == 0
    assert load_training_checkpoint(run / LAST)["step"] == step + 2 and (run / "final.pt").is_file()


# -- distillation ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def teacher_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deaot-s teacher (two GPM layers, the student has one) with fixed random weights."""
    from vosuite.factory import save_model

    torch.manual_seed(3)
    return save_model(create_model("deaot-s", weights=None), tmp_path_factory.mktemp("teacher") / "deaot-s.pt")


def distill_config(clip_root: Path, teacher: Path, *overrides: str):
    return smoke(clip_root, "method=distill", "model.name=deaot-t-deform", "distill.teacher=deaot-s",
                 f"distill.teacher_checkpoint={teacher}", "distill.cka_rows=64", *overrides)


def test_distillation_is_label_free_and_keeps_the_teacher_frozen(clip_root: Path, teacher_checkpoint: Path,
                                                                  tmp_path: Path) -> None:
    config = distill_config(clip_root, teacher_checkpoint, "train.total_steps=2")
    method = method_class("distill")(config)
    torch.manual_seed(0)
    model = method.build_model()
    teacher = method.auxiliary_modules()["teacher"]
    assert teacher.cfg.num_layers == 2 and model.cfg.num_layers == 1
    batch = collate_clips([{**method.build_data(model).dataset[0], "index": 0}])
    loss, logs = method.training_step(model, batch, 0)
    assert set(logs) >= {"att", "inter", "intra", "kd", "cka", "loss"} and 0 < logs["cka"] <= 1
    relabelled = {**batch, "labels": batch["labels"].clone()}
    relabelled["labels"][:, 1:] = 0  # the later frames' masks: not read without the gt term
    again, _ = method.training_step(model, relabelled, 0)
    assert again.item() == loss.item()
    trainer = Trainer(config, run_dir=tmp_path / "run")
    trainer.fit()
    assert not trainer.auxiliary["teacher"].training
    assert all(not p.requires_grad for p in trainer.auxiliary["teacher"].parameters())
    assert set(load_training_checkpoint(tmp_path / "run" / LAST)["model"]) == set(trainer.model.state_dict())


def test_distillation_loss_falls_when_over_fitting_one_clip(clip_root: Path, teacher_checkpoint: Path) -> None:
    config = distill_config(clip_root, teacher_checkpoint, "train.batch_size=1")
    method = method_class("distill")(config)
    torch.manual_seed(0)
    model = method.build_model()
    method.auxiliary_modules()
    batch = collate_clips([{**method.build_data(model).dataset[0], "index": 0}])
    history = over_fit(method, model, batch, 25)
    losses, cka = [logs["loss"] for logs in history], [logs["cka"] for logs in history]
    # measured: the loss falls to 0.225 of its start, the student's CKA to the teacher rises 0.428 -> 0.487
    assert np.mean(losses[-3:]) < 0.25 * np.mean(losses[:3]), losses
    assert cka[-1] > cka[0] + 0.05


@pytest.mark.parametrize("source", ["pseudo", "teacher"])
def test_fully_label_free_distillation_reads_no_human_mask(clip_root: Path, teacher_checkpoint: Path,
                                                           tmp_path: Path, source: str) -> None:
    config = distill_config(clip_root, teacher_checkpoint, "train.total_steps=2", "train.batch_size=2",
                            f"distill.reference_masks={source}")
    method = method_class("distill")(config)
    torch.manual_seed(0)
    model = method.build_model()
    method.auxiliary_modules()
    dataset = method.build_data(model).dataset
    assert isinstance(dataset, UnlabelledClipDataset)  # frames only: the dataset's masks are never read
    sample = dataset[0]
    assert sample["labels"].shape[:2] == (config.data.num_frames, 1) and not sample["labels"][1:].any()
    assert sample["obj_num"] == int(sample["labels"][0].max()) >= 1
    dataset.set_epoch(1)  # one video: a second clip from the next epoch
    batch = collate_clips([{**sample, "index": 0}, {**dataset[0], "index": 1}])
    loss, logs = method.training_step(model, batch, 0)
    assert torch.isfinite(loss) and 0 < logs["cka"] <= 1
    if source == "teacher":  # the teacher's own mask of the frame, with the region's object count
        refined = method.teacher_reference(batch["frames"][:, 0], batch["labels"][:, 0], batch["obj_num"])
        assert refined.shape == batch["labels"][:, 0].shape
        assert [int(r.max()) for r in refined] == batch["obj_num"]
    Trainer(config, run_dir=tmp_path / "run").fit()
    assert (tmp_path / "run" / "final.pt").is_file()


def test_label_free_distillation_refuses_the_ground_truth_term(clip_root: Path, teacher_checkpoint: Path) -> None:
    config = distill_config(clip_root, teacher_checkpoint, "distill.reference_masks=pseudo", "distill.gt_weight=1")
    with pytest.raises(InputError, match="gt_weight needs human labels"):
        method_class("distill")(config)
    with pytest.raises(InputError, match="reference_masks 'human'"):
        method_class("distill")(distill_config(clip_root, teacher_checkpoint, "distill.reference_masks=human"))


def test_distillation_recipe_loads_and_round_trips(tmp_path: Path) -> None:
    config = load_config(REPO / "configs" / "distill_deaot_t_davis16.yaml")
    assert config.method == "distill" and config.method_options.teacher == "deaot-l"
    assert load_config(save_config(config, tmp_path / "c.yaml")) == config
    label_free = load_config(REPO / "configs" / "distill_deaot_t_labelfree_davis16.yaml")
    assert label_free.method_options.reference_masks == "teacher" and label_free.method_options.gt_weight == 0
    assert label_free.optim == config.optim and label_free.train == config.train
    with pytest.raises(InputError, match="distill.relation_form"):
        method_class("distill")(load_config(REPO / "configs" / "distill_deaot_t_davis16.yaml",
                                            ["distill.relation_form=cosine"]))


# -- Betrayed by Attention ------------------------------------------------------------------------


def bba_config(clip_root: Path, *overrides: str):
    return smoke(clip_root, "method=bba", "model.name=bba-vits16", "model.encoder_freeze_at=0",
                 "data.size=[256,256]", "val.size=64", "bba.ratio=4", "bba.tau=0.01", *overrides)


def test_bba_trains_the_block_only_on_unlabelled_clips(clip_root: Path, tmp_path: Path) -> None:
    config = bba_config(clip_root, "train.batch_size=1")
    method = method_class("bba")(config)
    torch.manual_seed(0)
    model = method.build_model()
    data = method.build_data(model)
    sample = data.dataset[0]
    assert "labels" not in sample and float(sample["frames"].min()) >= 0 and float(sample["frames"].max()) <= 1
    batch = data.collate([{**sample, "index": 0}])
    assert all(name.startswith("temporal_transformer") for name, p in model.named_parameters() if p.requires_grad)
    history = over_fit(method, model, batch, 15)
    losses = [logs["loss"] for logs in history]
    assert set(history[-1]) == {"loss", "slot_loss", "motion_loss"}
    assert np.mean(losses[-3:]) < 0.35 * np.mean(losses[:3]), losses  # measured 0.312


def test_bba_validates_unsupervised(clip_root: Path) -> None:
    config = bba_config(clip_root)
    method = method_class("bba")(config)
    torch.manual_seed(0)
    scores = validate(method, method.build_model().eval(), config.val)
    assert 0 < scores["J&F-Mean"] < 1  # random weights: some proposals overlap the two objects
