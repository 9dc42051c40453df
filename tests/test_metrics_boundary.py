"""J and F of single frames (vosuite.metrics.boundary / region / frame_tally) against a literal
re-implementation of the official davis2017-evaluation formulas.

The reference below works on full frames in float64, exactly as the official code does
(``davis2017/metrics.py``: ``_seg2bmap``, ``f_measure``, ``db_eval_iou``), with the dilation done by
scipy instead of OpenCV and the disk built by explicit loops. The library crops boundaries to small
windows and counts with OpenCV, so equality (``==``, not approximately) on many masks checks that the
shortcuts change nothing. The behaviour is the one documented in
``../shared/fixtures/davis_official/README.md``.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
from scipy import ndimage

from vosuite.metrics import boundary_f_measure, boundary_map, boundary_tolerance, region_similarity
from vosuite.metrics.boundary import disk, extract_boundary, f_from_counts, matched_counts
from vosuite.metrics.frame_tally import tally_frame

# ---------------------------------------------------------------------------------------------
# Reference: the official formulas, literally, on full frames
# ---------------------------------------------------------------------------------------------


def ref_seg2bmap(seg: np.ndarray) -> np.ndarray:
    """Official ``_seg2bmap``: compare with the east, south and south-east neighbours on full-image
    shifted copies, then the edge rules (last row: east only; last column: south only; the
    bottom-right pixel never)."""
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def ref_radius(height: int, width: int, bound_th: float = 0.008) -> int:
    """Official: ``bound_th if bound_th >= 1 else ceil(bound_th * norm(shape))``."""
    if bound_th >= 1:
        return int(bound_th)
    return int(np.ceil(bound_th * np.linalg.norm((height, width))))


@cache
def ref_disk(radius: int) -> np.ndarray:
    """skimage ``disk(radius)``: offsets with dy^2 + dx^2 <= r^2, built pixel by pixel."""
    size = 2 * radius + 1
    out = np.zeros((size, size), dtype=bool)
    for row in range(size):
        for col in range(size):
            dy, dx = row - radius, col - radius
            if dy * dy + dx * dx <= radius * radius:
                out[row, col] = True
    return out


_DILATIONS: dict[tuple[bytes, tuple[int, ...], int], np.ndarray] = {}


def ref_dilate(boundary: np.ndarray, radius: int) -> np.ndarray:
    """Full-frame dilation by the disk; pixels outside the image are background (memoised: the
    same boundary maps come back many times in the pair loops below)."""
    key = (np.packbits(boundary).tobytes(), boundary.shape, radius)
    if key not in _DILATIONS:
        _DILATIONS[key] = ndimage.binary_dilation(boundary, structure=ref_disk(radius), border_value=0)
    return _DILATIONS[key]


def ref_f(prediction: np.ndarray, truth: np.ndarray, void: np.ndarray | None = None, bound_th: float = 0.008) -> float:
    """Official ``f_measure(foreground_mask=prediction, gt_mask=truth, void_pixels, bound_th)``."""
    if void is None:
        void = np.zeros(prediction.shape, dtype=bool)
    bound_pix = ref_radius(*prediction.shape, bound_th=bound_th)
    fg_boundary = ref_seg2bmap(prediction * np.logical_not(void))
    gt_boundary = ref_seg2bmap(truth * np.logical_not(void))
    fg_dil = ref_dilate(fg_boundary, bound_pix)
    gt_dil = ref_dilate(gt_boundary, bound_pix)
    gt_match = gt_boundary * fg_dil
    fg_match = fg_boundary * gt_dil
    n_fg = np.sum(fg_boundary)
    n_gt = np.sum(gt_boundary)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision = np.sum(fg_match) / float(n_fg)
        recall = np.sum(gt_match) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def ref_j(prediction: np.ndarray, truth: np.ndarray, void: np.ndarray | None = None) -> float:
    """Official ``db_eval_iou(annotation=truth, segmentation=prediction, void_pixels)``."""
    annotation = truth.astype(bool)
    segmentation = prediction.astype(bool)
    if void is None:
        void = np.zeros_like(segmentation)
    inters = np.sum((segmentation & annotation) & np.logical_not(void))
    union = np.sum((segmentation | annotation) & np.logical_not(void))
    if np.isclose(union, 0):
        return 1.0
    return float(inters / union)


# ---------------------------------------------------------------------------------------------
# Masks: blobs, empty, full, edge- and corner-touching, single pixels, thin lines, noise
# ---------------------------------------------------------------------------------------------

SHAPES = [(37, 53), (53, 37), (1, 1), (1, 9), (9, 1), (2, 2), (2, 3), (5, 5), (16, 24), (31, 31)]


def _ellipse(shape: tuple[int, int], cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    return ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1


def mask_zoo(shape: tuple[int, int], seed: int) -> dict[str, np.ndarray]:
    """Named boolean masks of ``shape`` covering the cases the boundary rules distinguish."""
    rng = np.random.default_rng(seed)
    h, w = shape
    zoo: dict[str, np.ndarray] = {"empty": np.zeros(shape, bool), "full": np.ones(shape, bool)}

    def put(name: str, rows: slice, cols: slice) -> None:
        mask = np.zeros(shape, bool)
        mask[rows, cols] = True
        zoo[name] = mask

    put("pixel_top_left", slice(0, 1), slice(0, 1))
    put("pixel_bottom_right", slice(h - 1, h), slice(w - 1, w))
    put("pixel_top_right", slice(0, 1), slice(w - 1, w))
    put("pixel_bottom_left", slice(h - 1, h), slice(0, 1))
    y, x = int(rng.integers(h)), int(rng.integers(w))
    put("pixel_random", slice(y, y + 1), slice(x, x + 1))
    put("last_row", slice(h - 1, h), slice(None))
    put("last_column", slice(None), slice(w - 1, w))
    put("first_row", slice(0, 1), slice(None))
    put("first_column", slice(None), slice(0, 1))
    put("row_line", slice(h // 2, h // 2 + 1), slice(w // 4, max(w // 4 + 1, 3 * w // 4)))
    put("column_line", slice(h // 4, max(h // 4 + 1, 3 * h // 4)), slice(w // 2, w // 2 + 1))
    put("box_top_left", slice(0, max(1, h // 3)), slice(0, max(1, w // 3)))
    put("box_bottom_right", slice(h - max(1, h // 3), h), slice(w - max(1, w // 3), w))
    put("box_right_edge", slice(h // 4, max(h // 4 + 1, h // 2)), slice(w // 2, w))
    put("box_bottom_edge", slice(h // 2, h), slice(w // 4, max(w // 4 + 1, w // 2)))
    diagonal = np.zeros(shape, bool)
    for k in range(min(h, w)):
        diagonal[k, k] = True
    zoo["diagonal"] = diagonal
    anti = np.zeros(shape, bool)
    for k in range(min(h, w)):
        anti[h - 1 - k, k] = True
    zoo["anti_diagonal"] = anti
    for index in range(3):
        blob = np.zeros(shape, bool)
        for _ in range(int(rng.integers(1, 4))):
            cy, cx = rng.uniform(-0.2, 1.2) * h, rng.uniform(-0.2, 1.2) * w
            ry, rx = rng.uniform(0.5, 0.6 * h + 1), rng.uniform(0.5, 0.6 * w + 1)
            blob |= _ellipse(shape, cy, cx, ry, rx)
        zoo[f"blob{index}"] = blob
    zoo["blob_complement"] = ~zoo["blob0"]
    zoo["noise"] = rng.random(shape) < 0.3
    zoo["sparse_noise"] = rng.random(shape) < 0.05
    zoo["checker"] = (np.add.outer(np.arange(h), np.arange(w)) % 2).astype(bool)
    return zoo


def random_void(shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = shape
    void = np.zeros(shape, bool)
    y0, x0 = int(rng.integers(h)), int(rng.integers(w))
    void[y0 : y0 + int(rng.integers(1, h + 1)), x0 : x0 + int(rng.integers(1, w + 1))] = True
    void |= rng.random(shape) < 0.05
    return void


# ---------------------------------------------------------------------------------------------
# Hand-checked facts from the README
# ---------------------------------------------------------------------------------------------


def test_tolerance_at_davis_resolutions() -> None:
    assert boundary_tolerance(480, 854) == 8
    assert boundary_tolerance(854, 480) == 8
    assert boundary_tolerance(1080, 1920) == 18
    assert boundary_tolerance(37, 53) == 1
    assert boundary_tolerance(480, 854, bound_th=3) == 3


def test_tolerance_equals_official_formula_over_many_sizes() -> None:
    for height in range(1, 2200, 13):
        for width in range(1, 4000, 29):
            assert boundary_tolerance(height, width) == ref_radius(height, width), (height, width)


def test_disk_of_radius_8_has_197_pixels() -> None:
    kernel = disk(8)
    assert kernel.shape == (17, 17)
    assert int(kernel.sum()) == 197
    assert ref_disk(8).sum() == 197
    for radius in range(0, 20):
        np.testing.assert_array_equal(disk(radius).astype(bool), ref_disk(radius))


def test_seg2bmap_hand_cases() -> None:
    centre = np.zeros((3, 3), bool)
    centre[1, 1] = True
    # The boundary is offset toward the top-left: outside on top/left, inside on bottom/right.
    expected = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0]], bool)
    np.testing.assert_array_equal(boundary_map(centre), expected)

    corner = np.zeros((4, 5), bool)
    corner[3, 4] = True  # bottom-right pixel: never a boundary pixel itself
    expected = np.zeros((4, 5), bool)
    expected[2, 3] = expected[2, 4] = expected[3, 3] = True
    np.testing.assert_array_equal(boundary_map(corner), expected)

    last_row = np.zeros((4, 5), bool)
    last_row[3, :] = True  # the image border never creates boundary
    expected = np.zeros((4, 5), bool)
    expected[2, :] = True
    np.testing.assert_array_equal(boundary_map(last_row), expected)

    assert not boundary_map(np.ones((6, 7), bool)).any()
    assert not boundary_map(np.zeros((6, 7), bool)).any()
    assert extract_boundary(np.ones((6, 7), bool)).count == 0


@pytest.mark.parametrize(("shift", "expected"), [(8, 1.0), (9, 0.616)])
def test_rectangle_shifted_sideways_at_480p(shift: int, expected: float) -> None:
    truth = np.zeros((480, 854), bool)
    truth[100:300, 200:500] = True
    prediction = np.zeros_like(truth)
    prediction[100:300, 200 + shift : 500 + shift] = True
    ours = boundary_f_measure(prediction, truth)
    assert ours == ref_f(prediction, truth)
    assert round(ours, 3) == expected
    if expected == 1.0:
        assert ours == 1.0


def test_empty_boundary_table() -> None:
    full, empty = np.ones((480, 854), bool), np.zeros((480, 854), bool)
    blob = np.zeros((480, 854), bool)
    blob[10:50, 10:50] = True
    assert boundary_f_measure(full, empty) == 1.0  # both boundaries empty
    assert region_similarity(full, empty) == 0.0
    assert boundary_f_measure(empty, empty) == 1.0 and region_similarity(empty, empty) == 1.0
    assert boundary_f_measure(empty, blob) == 0.0 and region_similarity(empty, blob) == 0.0
    assert boundary_f_measure(blob, empty) == 0.0 and region_similarity(blob, empty) == 0.0
    assert boundary_f_measure(full, blob) == 0.0  # prediction boundary empty, truth present
    assert f_from_counts(0, 0, 0, 0) == 1.0
    assert f_from_counts(0, 5, 0, 0) == 0.0
    assert f_from_counts(5, 0, 0, 0) == 0.0
    assert f_from_counts(4, 4, 0, 0) == 0.0  # P + R = 0
    assert f_from_counts(4, 8, 2, 6) == 2 * 0.5 * 0.75 / 1.25


# ---------------------------------------------------------------------------------------------
# Equality with the reference on many masks
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_boundary_maps_equal_reference(shape: tuple[int, int]) -> None:
    for name, mask in mask_zoo(shape, seed=shape[0] * 1000 + shape[1]).items():
        reference = ref_seg2bmap(mask)
        np.testing.assert_array_equal(boundary_map(mask), reference, err_msg=name)
        cropped = extract_boundary(mask)
        assert cropped.count == int(reference.sum()), name
        placed = np.zeros(shape, bool)
        placed[cropped.top : cropped.bottom, cropped.left : cropped.right] = cropped.pixels.astype(bool)
        np.testing.assert_array_equal(placed, reference, err_msg=name)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("bound_th", [0.008, 2, 0.12])
def test_f_and_j_equal_reference_on_all_pairs(shape: tuple[int, int], bound_th: float) -> None:
    zoo = mask_zoo(shape, seed=7 + shape[0] * 31 + shape[1])
    radius = boundary_tolerance(*shape, bound_th=bound_th)
    for prediction_name, prediction in zoo.items():
        for truth_name, truth in zoo.items():
            case = f"{prediction_name} vs {truth_name}"
            assert boundary_f_measure(prediction, truth, bound_th=bound_th) == ref_f(
                prediction, truth, bound_th=bound_th
            ), case
            assert region_similarity(prediction, truth) == ref_j(prediction, truth), case
            # The raw matched counts, against full-frame dilations.
            ours = matched_counts(extract_boundary(prediction), extract_boundary(truth), radius)
            pb, tb = ref_seg2bmap(prediction), ref_seg2bmap(truth)
            if pb.any() and tb.any():
                expected = (int((pb & ref_dilate(tb, radius)).sum()), int((tb & ref_dilate(pb, radius)).sum()))
                assert ours == expected, case


@pytest.mark.parametrize("shape", [(37, 53), (9, 1), (16, 24), (2, 3)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_void_rule_equals_reference(shape: tuple[int, int]) -> None:
    zoo = mask_zoo(shape, seed=99 + shape[0])
    for seed in range(3):
        void = random_void(shape, seed)
        for prediction_name, prediction in zoo.items():
            for truth_name, truth in list(zoo.items())[::3]:
                case = f"{prediction_name} vs {truth_name}, void {seed}"
                for bound_th in (0.008, 3):
                    assert boundary_f_measure(prediction, truth, void, bound_th=bound_th) == ref_f(
                        prediction, truth, void, bound_th=bound_th
                    ), case
                assert region_similarity(prediction, truth, void) == ref_j(prediction, truth, void), case


def test_random_blobs_at_480p_equal_reference() -> None:
    """Full DAVIS frame size (r = 8): objects near the borders and corners, shifted predictions."""
    rng = np.random.default_rng(2016)
    shape = (480, 854)
    for trial in range(6):
        truth = np.zeros(shape, bool)
        for _ in range(3):
            cy, cx = rng.uniform(-40, 520), rng.uniform(-40, 894)
            truth |= _ellipse(shape, cy, cx, rng.uniform(3, 120), rng.uniform(3, 200))
        dy, dx = (int(v) for v in rng.integers(-12, 13, size=2))
        prediction = np.roll(truth, (dy, dx), axis=(0, 1))
        prediction ^= rng.random(shape) < 0.0005  # a few stray pixels and holes
        assert boundary_f_measure(prediction, truth) == ref_f(prediction, truth), trial
        assert region_similarity(prediction, truth) == ref_j(prediction, truth), trial


# ---------------------------------------------------------------------------------------------
# Frame tallies (what the evaluator uses) against the reference, for label maps with void
# ---------------------------------------------------------------------------------------------


def _label_map(shape: tuple[int, int], seed: int, ids: list[int], void: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint8)
    for object_id in ids:
        cy, cx = rng.uniform(-0.1, 1.1) * shape[0], rng.uniform(-0.1, 1.1) * shape[1]
        ry, rx = rng.uniform(0.5, 0.5 + shape[0] / 2), rng.uniform(0.5, 0.5 + shape[1] / 2)
        labels[_ellipse(shape, cy, cx, ry, rx)] = object_id
    if void:
        labels[random_void(shape, seed + 1) & (rng.random(shape) < 0.7)] = 255
    return labels


@pytest.mark.parametrize("unsupervised", [False, True], ids=["semi", "unsup"])
@pytest.mark.parametrize("shape", [(37, 53), (40, 40), (1, 12)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_frame_tally_equals_reference(unsupervised: bool, shape: tuple[int, int]) -> None:
    for seed in range(4):
        truth = _label_map(shape, seed, [1, 3, 4], void=True)
        prediction = _label_map(shape, seed + 50, [2, 1, 3], void=False)
        for bound_th in (0.008, 4):
            radius = boundary_tolerance(*shape, bound_th=bound_th)
            tally = tally_frame(truth, prediction, radius, exclude_void=unsupervised, all_pairs=unsupervised)
            void = truth == 255 if unsupervised else None
            for truth_id in (1, 2, 3, 4):
                for prediction_id in (1, 2, 3, 5):
                    if not unsupervised and prediction_id != truth_id:
                        continue
                    case = f"seed {seed}, pair ({prediction_id}, {truth_id}), bound_th {bound_th}"
                    p, g = prediction == prediction_id, truth == truth_id
                    assert tally.jaccard(prediction_id, truth_id) == ref_j(p, g, void), case
                    assert tally.f_measure(prediction_id, truth_id) == ref_f(p, g, void, bound_th), case


def test_void_changes_scores_only_when_excluded() -> None:
    truth = np.zeros((40, 60), np.uint8)
    truth[10:30, 10:30] = 1
    truth[10:30, 30:40] = 255  # void beside the object
    prediction = np.zeros_like(truth)
    prediction[10:30, 10:40] = 1  # covers the object and the void
    radius = boundary_tolerance(40, 60)
    semi = tally_frame(truth, prediction, radius, exclude_void=False, all_pairs=False)
    unsup = tally_frame(truth, prediction, radius, exclude_void=True, all_pairs=True)
    assert semi.jaccard(1, 1) == 400 / 600
    assert unsup.jaccard(1, 1) == 1.0
    assert unsup.f_measure(1, 1) == 1.0
    assert semi.f_measure(1, 1) < 1.0
    assert math.isclose(semi.f_measure(1, 1), ref_f(prediction == 1, truth == 1))
