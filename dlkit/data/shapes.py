r"""A procedurally generated shapes dataset: circles, squares, triangles, crosses and stars.

Each image is one white shape on a black background, with a random centre, size and
rotation, plus Gaussian pixel noise; everything is drawn from one seed, so the same
arguments always give the same images, at any image size. Rendering is plain NumPy: a
pixel's value is the fraction of its :math:`4 \times 4` sub-pixel samples that fall inside
the shape (anti-aliasing), so edges look smooth even at 16×16.

Every shape is defined in its own frame, centred at the origin with "radius" :math:`r`
(the distance from the centre to the farthest point); a pixel centre :math:`p` is mapped
into that frame by :math:`q = R(-\theta)(p - c)` and tested there:

* circle: :math:`\lVert q \rVert \le r`;
* square, triangle, star, cross: inside a polygon (crossing-number test) whose outer
  vertices lie on the circle of radius :math:`r` (see :func:`shape_polygon`).
"""

from __future__ import annotations

import math

import numpy as np

from dlkit.data.splits import ArraySplits, split_arrays, standardize_splits

__all__ = ["SHAPE_CLASSES", "load_shapes", "make_shapes", "render_shape", "shape_polygon"]

SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "star")
_SUBSAMPLES = 4  # per axis: 16 samples per pixel
_REACH = float(
    np.hypot(1.0, 1.0 / 3.0)
)  # farthest point of any shape, in radii (the cross's corners)


def shape_polygon(kind: str) -> np.ndarray:
    """Vertices ``(V, 2)`` of a polygonal shape of radius 1 centred at the origin, counter-clockwise.

    ``"square"``: corners at radius 1 (side :math:`\\sqrt 2`); ``"triangle"``: equilateral,
    inscribed in the unit circle; ``"star"``: five points at radius 1, inner corners at 0.4;
    ``"cross"``: a plus sign with arms of half-width 1/3 reaching radius 1 along the axes.
    """
    if kind == "square":
        angles = np.pi / 4 + np.arange(4) * np.pi / 2
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if kind == "triangle":
        angles = np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if kind == "star":
        angles = np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.4)
        return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    if kind == "cross":
        w = 1.0 / 3.0  # half-width of an arm
        quarter = np.array([[1.0, -w], [1.0, w], [w, w]])  # right arm's tip, then an inner corner
        # Rotate that quarter by 0, 90, 180, 270 degrees (counter-clockwise): 12 vertices.
        turns = [np.linalg.matrix_power(np.array([[0.0, -1.0], [1.0, 0.0]]), k) for k in range(4)]
        return np.concatenate([quarter @ turn.T for turn in turns])  # (12, 2)
    raise ValueError(f"{kind!r} has no polygon; polygonal shapes are square, triangle, star, cross")


def _inside_polygon(points: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Crossing-number test: ``points`` ``(P, 2)``, ``vertices`` ``(V, 2)`` → ``(P,)`` booleans.

    A ray from the point towards +x crosses the boundary an odd number of times iff the
    point is inside.
    """
    x, y = points[:, :1], points[:, 1:]  # (P, 1) each
    x0, y0 = vertices[:, 0], vertices[:, 1]  # (V,) edge starts
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)  # (V,) edge ends
    straddles = (y0 > y) != (y1 > y)  # (P, V): the edge crosses the ray's height
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)  # (P, V); inf/nan only where not straddling
    crossings = straddles & (x < x_cross)
    return crossings.sum(axis=1) % 2 == 1


def render_shape(
    kind: str, image_size: int, *, center: tuple[float, float], radius: float, angle: float = 0.0
) -> np.ndarray:
    """One anti-aliased shape, float64 ``(image_size, image_size)`` with values in [0, 1].

    ``center`` is ``(x, y)`` in pixels (``(0, 0)`` is the top-left pixel's top-left
    corner), ``radius`` in pixels, ``angle`` in radians (counter-clockwise on screen).
    """
    if kind not in SHAPE_CLASSES:
        raise ValueError(f"unknown shape {kind!r}; expected one of {SHAPE_CLASSES}")
    if image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    if not radius > 0:
        raise ValueError(f"radius must be > 0 pixels, got {radius}")
    offsets = (np.arange(_SUBSAMPLES) + 0.5) / _SUBSAMPLES  # sub-pixel sample positions
    coords = (np.arange(image_size)[:, None] + offsets).ravel()  # (size * S,)
    sx, sy = np.meshgrid(coords, coords)  # (size*S, size*S); rows are y (down the screen)
    # Into the shape's frame: shift, flip y so angles turn counter-clockwise, rotate by -angle.
    dx, dy = sx.ravel() - center[0], center[1] - sy.ravel()
    cos, sin = math.cos(angle), math.sin(angle)
    q = np.stack([cos * dx + sin * dy, -sin * dx + cos * dy], axis=1) / radius  # (P, 2)
    r2 = (q**2).sum(axis=1)  # (P,) squared distance from the centre, in radii
    if kind == "circle":
        inside = r2 <= 1.0
    else:  # the polygon test (the slow part) only inside the polygon's bounding circle
        vertices = shape_polygon(kind)
        inside = r2 <= (vertices**2).sum(axis=1).max()
        inside[inside] = _inside_polygon(q[inside], vertices)
    samples = inside.reshape(image_size, _SUBSAMPLES, image_size, _SUBSAMPLES)  # (H, S, W, S)
    return samples.mean(axis=(1, 3))  # (H, W): covered fraction per pixel


def _sample_geometry(
    rng: np.random.Generator, n: int, image_size: int, radius_range: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Radii ``(n,)`` and centres ``(n, 2)`` in pixels, angles ``(n,)`` in radians.

    A shape's farthest point from its centre is ``_REACH · radius`` (the cross's arm
    corners lie slightly outside the unit circle), and centres keep that whole disc
    inside the image.
    """
    radii = rng.uniform(*radius_range, n) * image_size  # (n,) pixels
    reach = _REACH * radii[:, None]  # (n, 1)
    centers = reach + rng.uniform(0.0, 1.0, (n, 2)) * (image_size - 2 * reach)  # (n, 2)
    angles = rng.uniform(0.0, 2 * np.pi, n)
    return radii, centers, angles


def make_shapes(
    n_per_class: int = 300,
    *,
    image_size: int = 28,
    classes: tuple[str, ...] = SHAPE_CLASSES,
    noise: float = 0.05,
    radius_range: tuple[float, float] = (0.2, 0.45),
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``n_per_class`` random images of each class, shuffled; deterministic for ``seed``.

    Radii are drawn uniformly from ``radius_range`` (fractions of ``image_size``), centres
    so that the whole shape stays inside the image, angles uniformly from :math:`[0, 2\\pi)`;
    then Gaussian noise with standard deviation ``noise`` is added and values clipped to
    [0, 1]. Returns ``x`` float32 ``(N, 1, image_size, image_size)`` and ``y`` int64
    ``(N,)`` with ``y[i]`` the index of the shape in ``classes``; ``N = n_per_class * len(classes)``.
    """
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")
    if image_size < 4:
        raise ValueError(f"image_size must be >= 4 pixels to draw a shape, got {image_size}")
    unknown = [c for c in classes if c not in SHAPE_CLASSES]
    if unknown or not classes:
        raise ValueError(f"classes must be a non-empty subset of {SHAPE_CLASSES}, got {classes}")
    lo, hi = radius_range
    if not 0.0 < lo <= hi <= 0.45:
        raise ValueError(f"radius_range must satisfy 0 < lo <= hi <= 0.45, got {radius_range}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(len(classes)), n_per_class))  # (N,) balanced
    n = labels.size
    radii, centers, angles = _sample_geometry(rng, n, image_size, radius_range)
    x = np.empty((n, 1, image_size, image_size), dtype=np.float32)
    for i in range(n):
        x[i, 0] = render_shape(
            classes[labels[i]],
            image_size,
            center=tuple(centers[i]),
            radius=radii[i],
            angle=angles[i],
        )
    if noise > 0:
        x += rng.normal(0.0, noise, x.shape).astype(np.float32)
        np.clip(x, 0.0, 1.0, out=x)
    return x, labels.astype(np.int64)


def load_shapes(
    n_per_class: int = 300,
    *,
    image_size: int = 28,
    classes: tuple[str, ...] = SHAPE_CLASSES,
    noise: float = 0.05,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    standardize: bool = True,
) -> ArraySplits:
    """The shapes as stratified train / validation / test splits (balanced classes).

    Shapes: ``x_*`` ``(N, 1, image_size, image_size)`` float32, ``y_*`` ``(N,)`` int64. With
    ``standardize=True`` every split is shifted and scaled by the training split's mean
    and standard deviation; otherwise pixels lie in [0, 1]. Call ``.datasets()`` on the
    result for ``torch.utils.data.TensorDataset``s.
    """
    x, y = make_shapes(n_per_class, image_size=image_size, classes=classes, noise=noise, seed=seed)
    splits = split_arrays(x, y, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    return standardize_splits(splits) if standardize else splits
