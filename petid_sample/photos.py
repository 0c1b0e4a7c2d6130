"""Procedural photos of synthetic cats and dogs with identity-consistent appearance.

An animal's :class:`Appearance` (coat colours, markings at fixed body-relative positions, ears, eyes, tail,
proportions, collar, size) is drawn once from a seeded RNG; :func:`render_photo` draws it in a new photo each time
with its own pose, framing, background, lighting and noise. The figure is built in a local coordinate frame (body
centre at the origin, body half-length 1, y pointing down) and every polygon is mapped through one affine transform
per photo, so rotation, mirroring and scale keep the markings where they belong on the body. :func:`look_alike`
draws another animal that a listing would describe the same way (same coat, pattern, eyes, collar, size) but with
its own markings. The collar and the size are what a listing says, not what a photo shows: the size follows the drawn
build (leg length), and the collar is not drawn, so adding them changed no photo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

RGB = tuple[int, int, int]
Point = tuple[float, float]

# Base coats: deliberately few, so several animals share one and identity has to come from the markings.
COAT_COLOURS: dict[str, RGB] = {
    "black": (32, 30, 30),
    "white": (232, 229, 220),
    "ginger": (206, 122, 52),
    "grey": (128, 128, 134),
    "brown": (112, 72, 42),
    "cream": (226, 202, 152),
}
EYE_COLOURS: dict[str, RGB] = {
    "green": (80, 170, 70),
    "amber": (215, 150, 30),
    "blue": (70, 130, 220),
    "brown": (100, 60, 25),
    "yellow": (225, 210, 50),
}
# Collar colours (a listing names them; photos do not draw collars).
COLLAR_COLOURS = ("red", "blue", "green", "black", "pink", "yellow")
COLLAR_SHARE = {"cat": 0.35, "dog": 0.6}  # share of animals wearing a collar
SIZES = ("small", "medium", "large")
_SIZE_LEGS = {"cat": (0.52, 0.59), "dog": (0.68, 0.82)}  # leg length below the first: small; below the second: medium
PATTERNS = ("spots", "stripes", "patches")
FACE_MARKS = ("none", "blaze", "left-eye-patch", "right-eye-patch", "mask")
EAR_SHAPES = {"cat": ("pointed", "tall", "folded"), "dog": ("floppy", "pointed", "round")}


@dataclass(frozen=True)
class Mark:
    """One marking in figure coordinates: an ellipse (``kind="blob"``) or a band (``kind="stripe"``)."""

    kind: str
    x: float
    y: float
    rx: float
    ry: float
    angle: float  # radians


@dataclass(frozen=True)
class Appearance:
    """Everything that makes one synthetic animal look like itself."""

    species: str  # "cat" | "dog"
    coat: str  # key of COAT_COLOURS
    coat_rgb: RGB
    mark_rgb: RGB
    pattern: str  # one of PATTERNS
    marks: tuple[Mark, ...]  # body markings, clipped to body+head
    face_mark: str  # one of FACE_MARKS
    ear_shape: str
    ear_size: float
    eye_colour: str
    eye_rgb: RGB
    body_ry: float  # body half-height (half-length is 1)
    head_r: float
    leg_len: float
    leg_w: float
    tail_len: float
    tail_curl: float  # radians of bend along the tail
    tail_angle: float  # radians above horizontal at the root
    tail_w: float
    white_socks: bool
    tail_tip: bool
    belly: bool  # lighter belly
    muzzle_rgb: RGB | None  # dogs: lighter muzzle colour, or None
    collar: str | None = None  # one of COLLAR_COLOURS, or None (no collar)
    size: str = "medium"  # one of SIZES, from the build (see size_of)


def _shade(rgb: RGB, factor: float) -> RGB:
    return tuple(int(max(0, min(255, c * factor))) for c in rgb)  # type: ignore[return-value]


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def _luma(rgb: RGB) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def size_of(species: str, leg_len: float) -> str:
    """``small`` | ``medium`` | ``large`` for a build: by leg length, the one proportion the figure's scale keeps."""
    small, medium = _SIZE_LEGS[species]
    return "small" if leg_len < small else "medium" if leg_len < medium else "large"


def random_appearance(rng: np.random.Generator, species: str | None = None, *,
                      traits_rng: np.random.Generator | None = None) -> Appearance:
    """Draw a new animal. ``species`` is ``"cat"``, ``"dog"`` or None (either).

    The collar is drawn last, from ``traits_rng`` when given (the sample world passes its text stream there, so the
    photo stream ``rng`` draws exactly what it drew before collars existed), else from ``rng``."""
    if species is None:
        species = "cat" if rng.random() < 0.5 else "dog"
    if species not in ("cat", "dog"):
        raise ValueError(f"species {species!r} is not 'cat' or 'dog'")
    names = list(COAT_COLOURS)
    coat = names[int(rng.integers(len(names)))]
    coat_rgb = COAT_COLOURS[coat]
    # Markings contrast with the coat: the palette colour farthest in brightness, jittered a little.
    others = sorted((n for n in names if n != coat), key=lambda n: -abs(_luma(COAT_COLOURS[n]) - _luma(coat_rgb)))
    mark_name = others[int(rng.integers(3))]
    mark_rgb = _shade(COAT_COLOURS[mark_name], float(rng.uniform(0.9, 1.08)))

    body_ry = float(rng.uniform(0.42, 0.6))
    pattern = PATTERNS[int(rng.integers(len(PATTERNS)))]
    marks = _draw_marks(rng, pattern, body_ry)
    face_mark = FACE_MARKS[int(rng.integers(len(FACE_MARKS)))]
    ears = EAR_SHAPES[species]
    eye_name = list(EYE_COLOURS)[int(rng.integers(len(EYE_COLOURS)))]
    is_dog = species == "dog"
    app = Appearance(
        species=species,
        coat=coat,
        coat_rgb=coat_rgb,
        mark_rgb=mark_rgb,
        pattern=pattern,
        marks=marks,
        face_mark=face_mark,
        ear_shape=ears[int(rng.integers(len(ears)))],
        ear_size=float(rng.uniform(0.8, 1.25)),
        eye_colour=eye_name,
        eye_rgb=EYE_COLOURS[eye_name],
        body_ry=body_ry,
        head_r=float(rng.uniform(0.36, 0.46) if not is_dog else rng.uniform(0.38, 0.5)),
        leg_len=float(rng.uniform(0.45, 0.65) if not is_dog else rng.uniform(0.55, 0.95)),
        leg_w=float(rng.uniform(0.1, 0.14) if not is_dog else rng.uniform(0.12, 0.19)),
        tail_len=float(rng.uniform(0.9, 1.3) if not is_dog else rng.uniform(0.4, 1.0)),
        tail_curl=float(rng.uniform(-0.8, 0.8)),
        tail_angle=float(rng.uniform(0.2, 1.2)),
        tail_w=float(rng.uniform(0.07, 0.12) if not is_dog else rng.uniform(0.08, 0.16)),
        white_socks=bool(rng.random() < 0.35),
        tail_tip=bool(rng.random() < 0.4),
        belly=bool(rng.random() < 0.5),
        muzzle_rgb=_mix(coat_rgb, (235, 225, 210), float(rng.uniform(0.3, 0.7))) if is_dog and rng.random() < 0.6
        else None,
    )
    traits = rng if traits_rng is None else traits_rng
    collar = (COLLAR_COLOURS[int(traits.integers(len(COLLAR_COLOURS)))]
              if traits.random() < COLLAR_SHARE[species] else None)
    return replace(app, collar=collar, size=size_of(species, app.leg_len))


def _draw_marks(rng: np.random.Generator, pattern: str, body_ry: float) -> tuple[Mark, ...]:
    """Body markings of one animal for ``pattern`` (their positions and sizes are what tell look-alikes apart)."""
    marks: list[Mark] = []
    if pattern == "spots":
        for _ in range(int(rng.integers(3, 8))):
            r = float(rng.uniform(0.1, 0.24))
            marks.append(
                Mark("blob", float(rng.uniform(-0.85, 0.85)), float(rng.uniform(-0.8, 0.6)) * body_ry,
                     r, r * float(rng.uniform(0.6, 1.0)), float(rng.uniform(0, math.pi)))
            )
    elif pattern == "stripes":
        n = int(rng.integers(3, 7))
        xs = np.sort(rng.uniform(-0.85, 0.85, n))
        for x in xs:
            marks.append(Mark("stripe", float(x), -body_ry * 0.2, float(rng.uniform(0.05, 0.11)),
                              body_ry * float(rng.uniform(0.9, 1.4)), float(rng.uniform(-0.35, 0.35))))
    else:  # patches
        for _ in range(int(rng.integers(1, 4))):
            marks.append(
                Mark("blob", float(rng.uniform(-0.8, 0.8)), float(rng.uniform(-0.7, 0.5)) * body_ry,
                     float(rng.uniform(0.3, 0.55)), float(rng.uniform(0.22, 0.45)), float(rng.uniform(0, math.pi)))
            )
    return tuple(marks)


def look_alike(app: Appearance, rng: np.random.Generator) -> Appearance:
    """Another animal that reads the same in a listing: same species, coat, marking colour, pattern, ears, eyes,
    socks, tail tip, belly, muzzle, collar and size, but its own markings, face mark and body shape."""
    body_ry = float(rng.uniform(0.42, 0.6))
    faces = [f for f in FACE_MARKS if f != app.face_mark]
    return replace(
        app, marks=_draw_marks(rng, app.pattern, body_ry), face_mark=faces[int(rng.integers(len(faces)))],
        body_ry=body_ry, tail_curl=float(rng.uniform(-0.8, 0.8)), tail_angle=float(rng.uniform(0.2, 1.2)),
    )


# ---------------------------------------------------------------------------------------------------- geometry


def _ellipse(cx: float, cy: float, rx: float, ry: float, angle: float = 0.0, n: int = 28) -> list[Point]:
    ca, sa = math.cos(angle), math.sin(angle)
    pts = []
    for i in range(n):
        t = 2 * math.pi * i / n
        x, y = rx * math.cos(t), ry * math.sin(t)
        pts.append((cx + x * ca - y * sa, cy + x * sa + y * ca))
    return pts


def _quad(x0: float, y0: float, x1: float, y1: float, w0: float, w1: float) -> list[Point]:
    """A band from (x0,y0) to (x1,y1), half-width w0 at the start and w1 at the end."""
    dx, dy = x1 - x0, y1 - y0
    norm = math.hypot(dx, dy) or 1.0
    nx, ny = -dy / norm, dx / norm
    return [(x0 + nx * w0, y0 + ny * w0), (x1 + nx * w1, y1 + ny * w1), (x1 - nx * w1, y1 - ny * w1),
            (x0 - nx * w0, y0 - ny * w0)]


class _Frame:
    """Figure coordinates -> pixels: optional mirror, rotation, uniform scale, translation."""

    def __init__(self, scale: float, angle: float, cx: float, cy: float, mirror: bool) -> None:
        self.s, self.cx, self.cy, self.m = scale, cx, cy, -1.0 if mirror else 1.0
        self.ca, self.sa = math.cos(angle), math.sin(angle)

    def __call__(self, pts: list[Point]) -> list[Point]:
        s, ca, sa, m = self.s, self.ca, self.sa, self.m
        return [(self.cx + s * (m * x * ca - y * sa), self.cy + s * (m * x * sa + y * ca)) for x, y in pts]


# ---------------------------------------------------------------------------------------------------- rendering


def _background(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Gradient + low-frequency blotches + a floor + a few clutter shapes."""
    top = rng.uniform(60, 230, 3)
    bottom = rng.uniform(40, 200, 3)
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    arr = (top[None, None, :] * (1 - t) + bottom[None, None, :] * t).astype(np.float32)
    arr = np.broadcast_to(arr, (h, w, 3)).copy()
    blotch = Image.fromarray(rng.uniform(-35, 35, (4, 5, 3)).astype(np.float32)[..., 0], mode="F")
    arr += np.asarray(blotch.resize((w, h), Image.BILINEAR), dtype=np.float32)[..., None]
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    floor_y = int(h * rng.uniform(0.55, 0.8))
    floor = tuple(int(c) for c in rng.uniform(50, 190, 3))
    draw.rectangle([0, floor_y, w, h], fill=floor)
    for _ in range(int(rng.integers(2, 6))):
        colour = tuple(int(c) for c in rng.uniform(30, 230, 3))
        x0, y0 = float(rng.uniform(-0.1, 1.0) * w), float(rng.uniform(-0.1, 1.0) * h)
        x1, y1 = x0 + float(rng.uniform(0.05, 0.35) * w), y0 + float(rng.uniform(0.05, 0.35) * h)
        kind = int(rng.integers(3))
        if kind == 0:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        elif kind == 1:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        else:
            draw.line([x0, y0, x1, y1], fill=colour, width=int(rng.integers(2, 9)))
    return img


def _figure(app: Appearance, rng: np.random.Generator) -> dict[str, list]:
    """Polygons of one posed figure in figure coordinates, grouped by paint layer."""
    ry = app.body_ry
    hr = app.head_r
    head = (1.0 + float(rng.uniform(-0.05, 0.05)), -ry - 0.05 + float(rng.uniform(-0.06, 0.06)))
    hx, hy = head
    legs_far, legs_near, socks = [], [], []
    for i, lx in enumerate((-0.72, -0.5, 0.5, 0.72)):
        swing = float(rng.uniform(-0.25, 0.25))
        top = (lx, ry * 0.45)
        foot = (lx + swing * app.leg_len, ry * 0.55 + app.leg_len)
        band = _quad(top[0], top[1], foot[0], foot[1], app.leg_w, app.leg_w * 0.85)
        (legs_far if i % 2 == 0 else legs_near).append(band)
        if app.white_socks:
            k = 0.7
            sock_top = (top[0] + (foot[0] - top[0]) * k, top[1] + (foot[1] - top[1]) * k)
            socks.append(_quad(sock_top[0], sock_top[1], foot[0], foot[1], app.leg_w * 0.9, app.leg_w * 0.86))
    # Tail: a bent polyline out of the rump.
    tail_pts: list[Point] = [(-0.92, -ry * 0.3)]
    ang = math.pi + app.tail_angle + float(rng.uniform(-0.25, 0.25))  # pointing backwards and up
    seg = app.tail_len / 6
    for _ in range(6):
        x, y = tail_pts[-1]
        tail_pts.append((x + seg * math.cos(ang), y - seg * math.sin(ang)))
        ang += app.tail_curl / 6 * (-1 if app.tail_angle > 0 else 1)
    # Ears, mirrored left/right on top of the head.
    ears = []
    es = app.ear_size * hr
    for side in (-1, 1):
        ex = hx + side * hr * 0.55
        ey = hy - hr * 0.7
        if app.ear_shape in ("pointed", "tall"):
            tall = 1.3 if app.ear_shape == "tall" else 0.95
            ears.append([(ex - side * es * 0.45, ey + es * 0.15), (ex + side * es * 0.35, ey + es * 0.05),
                         (ex + side * es * 0.1, ey - es * tall)])
        elif app.ear_shape == "folded":
            ears.append(_ellipse(ex, ey + es * 0.05, es * 0.42, es * 0.25, side * 0.5, 12))
        elif app.ear_shape == "round":
            ears.append(_ellipse(ex, ey - es * 0.1, es * 0.35, es * 0.4, 0.0, 14))
        else:  # floppy: hangs down the side of the head
            ears.append(_ellipse(hx + side * hr * 0.95, hy + hr * 0.1, es * 0.26, es * 0.62, side * 0.25, 14))
    body = _ellipse(0.0, 0.0, 1.0, ry)
    head_poly = _ellipse(hx, hy, hr, hr * (0.92 if app.species == "cat" else 1.0), 0.0, 24)
    return {"body": body, "head": head_poly, "head_xy": head, "legs_far": legs_far, "legs_near": legs_near,
            "socks": socks, "tail": tail_pts, "ears": ears}


def _face_mark_polys(app: Appearance, head: Point) -> list[list[Point]]:
    hx, hy = head
    hr = app.head_r
    if app.face_mark == "blaze":
        return [_quad(hx, hy - hr, hx, hy + hr * 0.3, hr * 0.12, hr * 0.3)]
    if app.face_mark in ("left-eye-patch", "right-eye-patch"):
        side = -1 if app.face_mark == "left-eye-patch" else 1
        return [_ellipse(hx + side * hr * 0.4, hy - hr * 0.12, hr * 0.38, hr * 0.3, side * 0.3, 16)]
    if app.face_mark == "mask":
        return [_ellipse(hx, hy - hr * 0.8, hr * 0.95, hr * 0.55, 0.0, 18)]
    return []


def render_photo(
    appearance: Appearance, rng: np.random.Generator, size: tuple[int, int] = (480, 360),
    with_mask: bool = False,
) -> Image.Image | tuple[Image.Image, Image.Image]:
    """Draw one photo of ``appearance`` (RGB, ``size`` = (width, height)); the pose and scene come from ``rng``.

    With ``with_mask=True`` also returns an ``L`` mask of the animal's pixels (255 = animal), for tests.
    """
    w, h = size
    app = appearance
    img = _background(rng, w, h)
    fig = _figure(app, rng)

    # Framing: the figure spans about 3.4 x 2.6 units; fill 40-90% of the frame, sometimes cropped at an edge.
    fill = float(rng.uniform(0.45, 0.9))
    scale = min(fill * w / 3.6, fill * h / 2.7)
    cx = w / 2 + float(rng.uniform(-0.22, 0.22)) * w
    cy = h / 2 + float(rng.uniform(-0.15, 0.2)) * h
    frame = _Frame(scale, float(rng.uniform(-0.2, 0.2)), cx, cy, bool(rng.random() < 0.5))

    # Lighting per photo, applied to the figure's colours (the whole photo also gets a global grade below).
    coat = app.coat_rgb
    far = _shade(coat, 0.78)
    draw = ImageDraw.Draw(img)
    mask = Image.new("L", (w, h), 0)
    mdraw = ImageDraw.Draw(mask)

    def paint(poly: list[Point], colour: RGB) -> None:
        pts = frame(poly)
        draw.polygon(pts, fill=colour)
        mdraw.polygon(pts, fill=255)

    tail_px = frame(fig["tail"])
    tail_w = max(2, int(app.tail_w * 2 * scale))
    draw.line(tail_px, fill=coat, width=tail_w, joint="curve")
    mdraw.line(tail_px, fill=255, width=tail_w, joint="curve")
    if app.tail_tip:
        draw.line(tail_px[-3:], fill=app.mark_rgb, width=tail_w, joint="curve")
    for leg in fig["legs_far"]:
        paint(leg, far)
    if app.ear_shape != "floppy":
        for ear in fig["ears"]:
            paint(ear, coat)
    paint(fig["body"], coat)
    for leg in fig["legs_near"]:
        paint(leg, coat)
    paint(fig["head"], coat)
    if app.belly:
        paint(_ellipse(0.0, app.body_ry * 0.55, 0.7, app.body_ry * 0.35), _mix(coat, (240, 235, 225), 0.45))

    # Markings: drawn into their own mask and clipped to body+head, so they never leak off the animal.
    clip = Image.new("L", (w, h), 0)
    cdraw = ImageDraw.Draw(clip)
    cdraw.polygon(frame(fig["body"]), fill=255)
    cdraw.polygon(frame(fig["head"]), fill=255)
    marks = Image.new("L", (w, h), 0)
    kdraw = ImageDraw.Draw(marks)
    for m in app.marks:
        if m.kind == "stripe":
            dx, dy = math.sin(m.angle) * m.ry, math.cos(m.angle) * m.ry
            poly = _quad(m.x - dx, m.y - dy, m.x + dx, m.y + dy, m.rx, m.rx * 0.5)
        else:
            poly = _ellipse(m.x, m.y, m.rx, m.ry, m.angle, 20)
        kdraw.polygon(frame(poly), fill=255)
    for poly in _face_mark_polys(app, fig["head_xy"]):
        kdraw.polygon(frame(poly), fill=255)
    img.paste(app.mark_rgb, (0, 0, w, h), ImageChops.multiply(marks, clip))

    for sock in fig["socks"]:
        paint(sock, (238, 236, 230))
    hx, hy = fig["head_xy"]
    hr = app.head_r
    if app.ear_shape == "floppy":
        for ear in fig["ears"]:
            paint(ear, _shade(app.mark_rgb if app.pattern == "patches" else coat, 0.85))
    elif app.species == "cat":
        for ear in fig["ears"]:
            cxe = sum(p[0] for p in ear) / len(ear)
            cye = sum(p[1] for p in ear) / len(ear)
            draw.polygon(frame([(cxe + (x - cxe) * 0.5, cye + (y - cye) * 0.5) for x, y in ear]), fill=(220, 150, 150))
    if app.muzzle_rgb is not None:
        paint(_ellipse(hx, hy + hr * 0.38, hr * 0.5, hr * 0.36, 0.0, 18), app.muzzle_rgb)
    for side in (-1, 1):
        ex, ey = hx + side * hr * 0.38, hy - hr * 0.12
        draw.polygon(frame(_ellipse(ex, ey, hr * 0.17, hr * 0.14, 0.0, 14)), fill=app.eye_rgb)
        pupil_rx = hr * (0.05 if app.species == "cat" else 0.09)
        draw.polygon(frame(_ellipse(ex, ey, pupil_rx, hr * 0.12, 0.0, 10)), fill=(15, 12, 12))
    nose = [(hx - hr * 0.1, hy + hr * 0.2), (hx + hr * 0.1, hy + hr * 0.2), (hx, hy + hr * 0.33)]
    draw.polygon(frame(nose), fill=(200, 110, 120) if app.species == "cat" else (25, 20, 20))

    img = _grade(img, rng)
    return (img, mask) if with_mask else img


def _grade(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Global lighting (brightness, contrast, colour cast), sensor noise and sometimes a little blur."""
    arr = np.asarray(img, dtype=np.float32)
    contrast = float(rng.uniform(0.8, 1.2))
    brightness = float(rng.uniform(0.75, 1.25))
    cast = rng.uniform(0.9, 1.1, 3).astype(np.float32)
    mean = float(arr.mean())
    arr = ((arr - mean) * contrast + mean) * (brightness * cast)
    sigma = float(rng.uniform(0.0, 7.0))
    if sigma > 1.0:
        arr += rng.standard_normal(arr.shape, dtype=np.float32) * sigma
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if rng.random() < 0.35:
        out = out.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.4))))
    return out


def background_photo(rng: np.random.Generator, size: tuple[int, int] = (480, 360)) -> Image.Image:
    """A photo with no animal in it (a street, an object), for non-animal posts."""
    return _grade(_background(rng, *size), rng)
