"""Z-buffered rasteriser for the synthetic-people generator.

Every body part is a tapered capsule (a cone segment with round or flat ends) seen by a pinhole
camera: each pixel gets an orthographic-normal approximation of the capsule's surface (depth =
axis depth minus the cross-section bulge), Lambert shading from one light, a colour pattern, and
is kept only where it is nearer than what the z-buffer already holds. The per-pixel owner map
(person index, -1 background, -2 occluder) and depth map give the honest keypoint visibility.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

BACKGROUND, OCCLUDER = -1, -2
FAR = np.float32(1e6)

PLAIN, STRIPES_ACROSS, STRIPES_ALONG, NOISE = 0, 1, 2, 3

# BGR skin tones (light to dark); jittered per person.
SKIN_TONES = np.array([[196, 214, 255], [163, 196, 241], [130, 170, 224], [100, 140, 198],
                       [75, 110, 160], [55, 80, 120], [45, 60, 90]], dtype=np.float32)
HAIR_COLOURS = np.array([[20, 20, 25], [30, 40, 60], [40, 70, 110], [90, 150, 200], [150, 150, 150],
                         [30, 30, 120], [15, 25, 45]], dtype=np.float32)


@dataclass
class Paint:
    """Surface colour (BGR 0-255), an optional pattern and a second colour for it."""

    colour: np.ndarray
    pattern: int = PLAIN
    colour2: np.ndarray | None = None
    period: float = 6.0    # stripe period in pixels (across) or stripes per width (along)
    amount: float = 0.3    # noise amplitude (pattern NOISE)


@dataclass
class HairStyle:
    """Hair on the head capsule: pixels whose normal points away from the face or up are hair."""

    colour: np.ndarray
    front: float          # normal . forward below this -> hair (the back of the head)
    top: float            # normal . up above this -> hair (the top of the head)
    forward: np.ndarray   # head forward (camera frame)
    up: np.ndarray        # head up (camera frame)


@dataclass
class Canvas:
    """Image being drawn (float32 BGR), its depth buffer, owner map and a noise texture for patterns."""

    image: np.ndarray
    zbuf: np.ndarray
    owner: np.ndarray
    part: np.ndarray       # body-part id of the top surface (0 = none)
    noise: np.ndarray
    light: np.ndarray      # unit vector towards the light, camera frame
    ambient: float

    @classmethod
    def create(cls, background: np.ndarray, rng: np.random.Generator) -> "Canvas":
        h, w = background.shape[:2]
        small = rng.uniform(-1.0, 1.0, size=(max(2, h // 3), max(2, w // 3))).astype(np.float32)
        noise = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        light = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.9, 0.2), -rng.uniform(0.5, 1.0)])
        return cls(
            image=background,
            zbuf=np.full((h, w), FAR, dtype=np.float32),
            owner=np.full((h, w), BACKGROUND, dtype=np.int16),
            part=np.zeros((h, w), dtype=np.uint8),
            noise=noise,
            light=(light / np.linalg.norm(light)).astype(np.float32),
            ambient=float(rng.uniform(0.3, 0.55)),
        )

    @property
    def height(self) -> int:
        return self.image.shape[0]

    @property
    def width(self) -> int:
        return self.image.shape[1]


def draw_capsule(
    canvas: Canvas,
    p0: np.ndarray, p1: np.ndarray,
    r0: float, r1: float,
    z0: float, z1: float,
    t0: float, t1: float,
    paint: Paint,
    owner: int,
    caps: tuple[bool, bool] = (True, True),
    hair: HairStyle | None = None,
    part: int = 0,
) -> None:
    """Rasterise a tapered capsule from pixel ``p0`` (radius ``r0`` px, axis depth ``z0``, surface
    bulge ``t0`` m) to ``p1``; ``caps`` says which ends are round (flat ends stop at the axis end)."""
    x0 = int(np.floor(min(p0[0] - r0, p1[0] - r1)))
    x1 = int(np.ceil(max(p0[0] + r0, p1[0] + r1))) + 1
    y0 = int(np.floor(min(p0[1] - r0, p1[1] - r1)))
    y1 = int(np.ceil(max(p0[1] + r0, p1[1] + r1))) + 1
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, canvas.width), min(y1, canvas.height)
    if x1 <= x0 or y1 <= y0 or max(r0, r1) < 0.3:
        return
    qx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(p0[0])
    qy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(p0[1])
    dx, dy = np.float32(p1[0] - p0[0]), np.float32(p1[1] - p0[1])
    length2 = float(dx * dx + dy * dy)
    if length2 < 1e-6:
        t_raw = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
        caps = (True, True)
    else:
        t_raw = (qx * dx + qy * dy) / np.float32(length2)
    t = np.clip(t_raw, 0.0, 1.0)
    ox = qx - t * dx  # pixel minus closest axis point
    oy = qy - t * dy
    r = np.float32(r0) + t * np.float32(r1 - r0)
    r = np.maximum(r, np.float32(0.3))
    n2 = (ox * ox + oy * oy) / (r * r)
    inside = n2 < 1.0
    if not caps[0]:
        inside &= t_raw >= 0.0
    if not caps[1]:
        inside &= t_raw <= 1.0
    if not inside.any():
        return
    nz = np.sqrt(np.maximum(1.0 - n2, 0.0))
    depth = np.float32(z0) + t * np.float32(z1 - z0) - (np.float32(t0) + t * np.float32(t1 - t0)) * nz
    zsub = canvas.zbuf[y0:y1, x0:x1]
    m = inside & (depth < zsub)
    if not m.any():
        return
    nx, ny, nzm = ox[m] / r[m], oy[m] / r[m], -nz[m]
    light = canvas.light
    lam = np.clip(nx * light[0] + ny * light[1] + nzm * light[2], 0.0, 1.0)
    shade = canvas.ambient + (1.0 - canvas.ambient) * lam
    colour = paint.colour.astype(np.float32)
    if paint.pattern == STRIPES_ACROSS and length2 > 1e-6:
        phase = t_raw[m] * np.float32(np.sqrt(length2) / max(paint.period, 1.5))
        stripe = (phase - np.floor(phase)) < 0.5
        base = np.where(stripe[:, None], colour, paint.colour2)
    elif paint.pattern == STRIPES_ALONG and length2 > 1e-6:
        side = (ox[m] * -dy + oy[m] * dx) / (np.float32(np.sqrt(length2)) * r[m])  # in [-1, 1]
        phase = (side + 1.0) * np.float32(paint.period * 0.5)
        stripe = (phase - np.floor(phase)) < 0.5
        base = np.where(stripe[:, None], colour, paint.colour2)
    elif paint.pattern == NOISE:
        base = colour[None, :] * (1.0 + paint.amount * canvas.noise[y0:y1, x0:x1][m])[:, None]
    else:
        base = np.broadcast_to(colour, (int(m.sum()), 3))
    if hair is not None:
        dot_f = nx * hair.forward[0] + ny * hair.forward[1] + nzm * hair.forward[2]
        dot_u = nx * hair.up[0] + ny * hair.up[1] + nzm * hair.up[2]
        is_hair = (dot_f < hair.front) | (dot_u > hair.top)
        base = np.where(is_hair[:, None], hair.colour, base)
    canvas.image[y0:y1, x0:x1][m] = base * shade[:, None]
    zsub[m] = depth[m]
    canvas.owner[y0:y1, x0:x1][m] = owner
    canvas.part[y0:y1, x0:x1][m] = part


def draw_flat_polygon(canvas: Canvas, points: np.ndarray, depth: float, paint: Paint, owner: int,
                      gradient: float = 0.25) -> None:
    """Rasterise a flat polygon (``points`` (N, 2) px) at constant depth with a linear shading ramp."""
    x0 = max(int(np.floor(points[:, 0].min())), 0)
    y0 = max(int(np.floor(points[:, 1].min())), 0)
    x1 = min(int(np.ceil(points[:, 0].max())) + 1, canvas.width)
    y1 = min(int(np.ceil(points[:, 1].max())) + 1, canvas.height)
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    local = np.round((points - np.array([x0, y0])) * 16).astype(np.int32)
    cv2.fillPoly(mask, [local], 1, lineType=cv2.LINE_8, shift=4)
    zsub = canvas.zbuf[y0:y1, x0:x1]
    m = (mask > 0) & (np.float32(depth) < zsub)
    if not m.any():
        return
    ys, xs = np.nonzero(m)
    span = max(x1 - x0, y1 - y0, 1)
    ramp = 1.0 - gradient * ((xs + ys) / span)
    colour = paint.colour.astype(np.float32)
    if paint.pattern == NOISE:
        tex = 1.0 + paint.amount * canvas.noise[y0:y1, x0:x1][m]
    else:
        tex = 1.0
    canvas.image[y0:y1, x0:x1][m] = colour[None, :] * (ramp * tex)[:, None]
    zsub[m] = np.float32(depth)
    canvas.owner[y0:y1, x0:x1][m] = owner
    canvas.part[y0:y1, x0:x1][m] = 0


def random_colour(rng: np.random.Generator, saturation: tuple[float, float] = (0.2, 1.0),
                  value: tuple[float, float] = (0.15, 1.0)) -> np.ndarray:
    """A random BGR colour (0-255) from HSV ranges."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*saturation) * 255, rng.uniform(*value) * 255]]],
                   dtype=np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def skin_colour(rng: np.random.Generator) -> np.ndarray:
    tone = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]
    return np.clip(tone * rng.uniform(0.85, 1.1) + rng.uniform(-10, 10, size=3), 0, 255).astype(np.float32)


def random_paint(rng: np.random.Generator, colour: np.ndarray | None = None) -> Paint:
    """Clothing: plain, stripes (across or along the limb) or noisy fabric."""
    colour = random_colour(rng) if colour is None else colour
    kind = int(rng.choice(4, p=[0.45, 0.2, 0.15, 0.2]))
    return Paint(colour=colour, pattern=kind, colour2=random_colour(rng),
                 period=float(rng.uniform(3.0, 10.0)), amount=float(rng.uniform(0.2, 0.6)))


def render_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Cluttered background: colour gradient + low-frequency noise + random shapes and lines."""
    c0, c1 = random_colour(rng, value=(0.1, 0.95)), random_colour(rng, value=(0.1, 0.95))
    angle = rng.uniform(0, 2 * np.pi)
    xs = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :]
    ys = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
    g = np.clip(xs * np.float32(np.cos(angle)) + ys * np.float32(np.sin(angle)) + 0.5, 0.0, 1.0)
    image = c0[None, None, :] + g[:, :, None] * (c1 - c0)[None, None, :]
    cells = int(rng.integers(3, 12))
    low = rng.uniform(-1, 1, size=(cells, max(2, cells * width // height), 3)).astype(np.float32)
    image += cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC) * np.float32(rng.uniform(10, 50))
    if rng.random() < 0.3:  # a textured region (floor/wall with stripes)
        period = rng.uniform(6, 30)
        stripes = ((xs * width * np.cos(angle) + ys * height * np.sin(angle)) % period) < period / 2
        region = ys > rng.uniform(-0.5, 0.5)
        image += (stripes & region)[:, :, None] * np.float32(rng.uniform(-40, 40))
    for _ in range(int(rng.integers(4, 22))):
        colour = random_colour(rng).tolist()
        kind = int(rng.integers(5))
        cx, cy = rng.uniform(-0.1, 1.1) * width, rng.uniform(-0.1, 1.1) * height
        size = rng.uniform(0.03, 0.35) * min(width, height)
        thickness = -1 if rng.random() < 0.7 else int(rng.integers(1, 4))
        if kind == 0:
            cv2.rectangle(image, (int(cx - size), int(cy - size * rng.uniform(0.2, 2))),
                          (int(cx + size * rng.uniform(0.2, 2)), int(cy + size)), colour, thickness)
        elif kind == 1:
            cv2.circle(image, (int(cx), int(cy)), int(size * 0.6), colour, thickness)
        elif kind == 2:
            cv2.ellipse(image, (int(cx), int(cy)), (int(size), int(size * rng.uniform(0.2, 0.9))),
                        float(rng.uniform(0, 180)), 0, 360, colour, thickness)
        elif kind == 3:
            pts = np.stack([cx + rng.uniform(-size, size, 5), cy + rng.uniform(-size, size, 5)], 1)
            cv2.fillPoly(image, [pts.astype(np.int32)], colour)
        else:
            ex, ey = cx + rng.uniform(-2, 2) * size, cy + rng.uniform(-2, 2) * size
            cv2.line(image, (int(cx), int(cy)), (int(ex), int(ey)), colour, int(rng.integers(1, 5)))
    return image


def finish_image(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Camera effects (slight blur, contrast/brightness, sensor noise) and conversion to uint8."""
    if rng.random() < 0.35:
        image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.4, 1.2)))
    gain, bias = np.float32(rng.uniform(0.75, 1.2)), np.float32(rng.uniform(-25, 25))
    image = image * gain + bias
    sigma = float(rng.uniform(0.0, 7.0))
    if sigma > 0.5:
        image = image + rng.standard_normal(image.shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)
