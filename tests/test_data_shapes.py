"""dlkit.data.shapes: rendered areas against the shoelace formula, symmetry, determinism,
balanced classes, value range, torch datasets, and a linear classifier far above chance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import RidgeClassifier

from dlkit.data import SHAPE_CLASSES, load_shapes, make_shapes, render_shape, shape_polygon
from dlkit.data.shapes import _sample_geometry


def _shoelace_area(vertices: np.ndarray) -> float:
    x, y = vertices[:, 0], vertices[:, 1]
    return 0.5 * float(x @ np.roll(y, -1) - y @ np.roll(x, -1))  # > 0 when counter-clockwise


@pytest.mark.parametrize("kind", SHAPE_CLASSES)
def test_rendered_area_matches_the_geometry(kind: str) -> None:
    radius = 20.0
    unit_area = math.pi if kind == "circle" else _shoelace_area(shape_polygon(kind))
    image = render_shape(kind, 64, center=(31.3, 32.6), radius=radius, angle=0.7)
    assert image.shape == (64, 64) and image.min() >= 0.0 and image.max() <= 1.0
    assert image.sum() == pytest.approx(unit_area * radius**2, rel=0.01)


def test_known_polygon_areas() -> None:
    # Square with corners on the unit circle: side sqrt 2, area 2. Inscribed equilateral
    # triangle: area 3 sqrt(3) / 4. Cross of half-width 1/3: 2 · (2 · 2/3) - (2/3)^2 = 20/9.
    assert _shoelace_area(shape_polygon("square")) == pytest.approx(2.0)
    assert _shoelace_area(shape_polygon("triangle")) == pytest.approx(3 * math.sqrt(3) / 4)
    assert _shoelace_area(shape_polygon("cross")) == pytest.approx(20 / 9)
    assert np.allclose(np.linalg.norm(shape_polygon("star")[::2], axis=1), 1.0)


@pytest.mark.parametrize(
    ("kind", "period"),
    [
        ("square", np.pi / 2),
        ("triangle", 2 * np.pi / 3),
        ("star", 2 * np.pi / 5),
        ("cross", np.pi / 2),
    ],
)
def test_rotating_by_the_symmetry_angle_changes_nothing(kind: str, period: float) -> None:
    a = render_shape(kind, 48, center=(24.0, 24.0), radius=18.0, angle=0.2)
    b = render_shape(kind, 48, center=(24.0, 24.0), radius=18.0, angle=0.2 + period)
    c = render_shape(kind, 48, center=(24.0, 24.0), radius=18.0, angle=0.2 + period / 2)
    assert np.abs(a - b).sum() < 0.01 * a.sum()  # sampling noise only
    assert np.abs(a - c).sum() > 0.05 * a.sum()  # half a period is a different picture


def test_every_pair_of_classes_looks_different() -> None:
    images = {
        k: render_shape(k, 32, center=(16.0, 16.0), radius=12.0, angle=0.3) for k in SHAPE_CLASSES
    }
    for i, first in enumerate(SHAPE_CLASSES):
        for second in SHAPE_CLASSES[i + 1 :]:
            differing = np.abs(images[first] - images[second]).sum()
            assert differing > 30.0, f"{first} and {second} differ in only {differing:.1f} pixels"


def test_deterministic_balanced_and_in_range() -> None:
    x, y = make_shapes(12, image_size=20, seed=5)
    x2, y2 = make_shapes(12, image_size=20, seed=5)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(x, make_shapes(12, image_size=20, seed=6)[0])
    assert x.shape == (60, 1, 20, 20) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [12] * 5
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert len(set(y[:10].tolist())) > 1, "classes must be shuffled, not in blocks"


@pytest.mark.parametrize("size", [8, 17, 64])
def test_any_image_size_keeps_the_shape_inside(size: int) -> None:
    x, _ = make_shapes(4, image_size=size, noise=0.0, seed=1)
    assert x.shape == (20, 1, size, size)
    assert (x.reshape(20, -1).sum(axis=1) > 0.02 * size * size).all(), "an image is (almost) empty"
    radii, centers, _ = _sample_geometry(np.random.default_rng(0), 500, size, (0.2, 0.45))
    reach = np.linalg.norm(shape_polygon("cross"), axis=1).max() * radii[:, None]  # farthest point
    assert (centers - reach >= 0).all() and (centers + reach <= size).all()


@pytest.mark.parametrize("kind", SHAPE_CLASSES)
def test_a_shape_in_the_corner_loses_no_area(kind: str) -> None:
    radius = 0.45 * 40
    reach = np.linalg.norm(shape_polygon("cross"), axis=1).max() * radius
    unit_area = math.pi if kind == "circle" else _shoelace_area(shape_polygon(kind))
    for angle in (0.0, 0.4, 1.1):
        image = render_shape(kind, 40, center=(reach, reach), radius=radius, angle=angle)
        assert image.sum() == pytest.approx(unit_area * radius**2, rel=0.01)


def test_noise_is_the_requested_level() -> None:
    clean, _ = make_shapes(10, image_size=24, noise=0.0, seed=2)
    noisy, _ = make_shapes(10, image_size=24, noise=0.1, seed=2)
    background = clean == 0.0  # there clipping keeps only the positive half of the noise
    half_normal_mean = 0.1 * math.sqrt(2 / math.pi) / 2  # E[max(0, N(0, 0.1²))]
    assert noisy[background].mean() == pytest.approx(half_normal_mean, rel=0.05)


def test_splits_are_stratified_standardized_datasets() -> None:
    splits = load_shapes(30, image_size=16, seed=0)
    for y in (splits.y_train, splits.y_val, splits.y_test):
        counts = np.bincount(y, minlength=5)
        assert counts.max() - counts.min() <= 1
    assert splits.num_classes == 5
    assert abs(float(splits.x_train.mean())) < 1e-4 and float(
        splits.x_train.std()
    ) == pytest.approx(1.0, rel=1e-3)
    raw = load_shapes(30, image_size=16, seed=0, standardize=False)
    mean, std = raw.x_train.mean(), raw.x_train.std()
    np.testing.assert_allclose(splits.x_test, (raw.x_test - mean) / std, rtol=1e-4, atol=1e-5)
    train, val, test = splits.datasets()
    image, label = train[0]
    assert (
        isinstance(image, torch.Tensor)
        and image.shape == (1, 16, 16)
        and label.dtype == torch.int64
    )
    assert len(train) + len(val) + len(test) == 150


def test_a_linear_classifier_beats_chance_by_far() -> None:
    splits = load_shapes(100, image_size=20, seed=0)
    flat = lambda a: a.reshape(len(a), -1)  # noqa: E731
    model = RidgeClassifier(alpha=100.0).fit(
        flat(splits.x_train), splits.y_train
    )  # closed form: fast
    accuracy = model.score(flat(splits.x_test), splits.y_test)
    assert accuracy > 0.35, f"test accuracy {accuracy:.2f}; chance is 0.20"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"classes": ("circle", "hexagon")}, "subset of"),
        ({"image_size": 3}, "image_size"),
        ({"n_per_class": 0}, "n_per_class"),
        ({"radius_range": (0.3, 0.5)}, "radius_range"),
        ({"noise": -0.1}, "noise"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_shapes(**{"n_per_class": 2, **kwargs})


def test_render_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown shape 'oval'"):
        render_shape("oval", 16, center=(8.0, 8.0), radius=4.0)
