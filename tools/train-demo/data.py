"""Synthetic 32x32 pictures and their captions: one shape, or two shapes side
by side, in flat colours on a flat background, drawn with 4x4 supersampling.

Captions:  "a [small |large ]red circle on a blue background"
           "a red circle left of a green square on a blue background"
"""

import numpy as np

SIZE = 32
SS = 4  # supersampling factor

# Colour names and the RGB values drawn; the Go semantic test (diffusion/demotest)
# uses the same palette to read colours back from rendered images.
PALETTE = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
COLOURS = list(PALETTE)
SHAPES = ["circle", "square", "triangle", "diamond"]
SIZES = {"small": (4.0, 5.0), "": (7.0, 9.0), "large": (11.0, 12.5)}
WORDS = ["a", "on", "background", "left", "right", "of", "small", "large"] + COLOURS + SHAPES

_grid = (np.arange(SIZE * SS) + 0.5) / SS
_X, _Y = np.meshgrid(_grid, _grid)


def shape_mask(shape, cx, cy, r):
    """Coverage in [0,1] of a shape centred at (cx, cy) with half-size r."""
    x, y = _X - cx, _Y - cy
    if shape == "circle":
        m = x * x + y * y <= r * r
    elif shape == "square":
        m = (np.abs(x) <= 0.85 * r) & (np.abs(y) <= 0.85 * r)
    elif shape == "triangle":  # apex up, base at 0.8r below the centre
        m = (y <= 0.8 * r) & (np.abs(x) <= (y + r) / 1.8)
    elif shape == "diamond":
        m = np.abs(x) + np.abs(y) <= r
    else:
        raise ValueError(shape)
    return m.reshape(SIZE, SS, SIZE, SS).mean(axis=(1, 3))


def draw(objects, bg):
    """objects: [(shape, colour, cx, cy, r)]; returns uint8 [3, 32, 32]."""
    img = np.empty((SIZE, SIZE, 3), np.float64)
    img[:] = PALETTE[bg]
    for shape, colour, cx, cy, r in objects:
        a = shape_mask(shape, cx, cy, r)[:, :, None]
        img = img * (1 - a) + np.array(PALETTE[colour], np.float64) * a
    return np.rint(img).astype(np.uint8).transpose(2, 0, 1)


def sample(rng, pair_fraction):
    """One random (image, caption)."""
    if rng.random() < pair_fraction:
        c1, c2, bg = rng.choice(COLOURS, 3, replace=False)
        s1, s2 = rng.choice(SHAPES, 2)
        r = rng.uniform(5.0, 6.5, 2)
        xl, xr = 8.5 + rng.uniform(-1, 1), 23.5 + rng.uniform(-1, 1)
        y = 16 + rng.uniform(-2, 2, 2)
        if rng.random() < 0.5:
            objs = [(s1, c1, xl, y[0], r[0]), (s2, c2, xr, y[1], r[1])]
            rel = "left"
        else:
            objs = [(s1, c1, xr, y[0], r[0]), (s2, c2, xl, y[1], r[1])]
            rel = "right"
        return draw(objs, bg), f"a {c1} {s1} {rel} of a {c2} {s2} on a {bg} background"
    c, bg = rng.choice(COLOURS, 2, replace=False)
    s = rng.choice(SHAPES)
    size = ["small", "", "large"][rng.integers(3)]
    lo, hi = SIZES[size]
    r = rng.uniform(lo, hi)
    jitter = 3.0 if size == "small" else 2.0 if size == "" else 0.5
    cx, cy = 16 + rng.uniform(-jitter, jitter, 2)
    word = f"{size} " if size else ""
    return draw([(s, c, cx, cy, r)], bg), f"a {word}{c} {s} on a {bg} background"


def dataset(seed, n, pair_fraction):
    rng = np.random.Generator(np.random.PCG64(seed))
    imgs = np.empty((n, 3, SIZE, SIZE), np.uint8)
    caps = []
    for i in range(n):
        imgs[i], cap = sample(rng, pair_fraction)
        caps.append(cap)
    return imgs, caps
