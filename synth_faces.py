"""Procedural faces written in the official CelebA layout: the built-in data set.

CelebA cannot be downloaded everywhere, so the project ships this renderer. It writes
``img_align_celeba/000001.jpg ...`` (178x218 RGB JPEGs, the face placed where CelebA's
alignment puts it), ``list_attr_celeba.txt`` and ``list_eval_partition.txt`` exactly as
the official files are laid out, so whatever reads CelebA reads it unchanged. It is not
a reader (dataset.py) and not a model.

Attribute rows follow CelebA's frequencies measured on the real ``list_attr_celeba.txt``
(its first 20,000 rows), conditioned on Male, with Mouth_Slightly_Open conditioned on
Smiling too, and with CelebA's exclusions enforced: Bald has no hair colour, texture or
bangs; one hair colour at most; Straight_Hair and Wavy_Hair exclusive; No_Beard has no
Goatee, Mustache or Sideburns. Every face is deterministic for (seed, image number).

How each attribute is drawn:

==================  ===========================================================
5_o_Clock_Shadow    grey-blue stubble tint over jaw and upper lip
Arched_Eyebrows     brows drawn as a high arch (flat otherwise)
Attractive          label only
Bags_Under_Eyes     dark crescents under the eyes
Bald                no hair; a skin-coloured scalp with a highlight
Bangs               a fringe of hair over the forehead down to the brows
Big_Lips            lips twice as thick
Big_Nose            longer, wider nose with large nostrils
Black_Hair          hair colour near-black
Blond_Hair          hair colour yellow-blond
Blurry              Gaussian blur of the whole picture
Brown_Hair          hair colour brown (other hair is auburn or dark brown)
Bushy_Eyebrows      brows three times as thick
Chubby              wider, rounder face
Double_Chin         a second chin arc with shading under the jaw
Eyeglasses          dark frames with a bridge and faintly tinted lenses
Goatee              a hair patch on the chin
Gray_Hair           hair colour grey
Heavy_Makeup        coloured eyeshadow and thick eyeliner
High_Cheekbones     light highlights with shadows below the cheekbones
Male                short hair, broader jaw, heavier brows (long hair otherwise)
Mouth_Slightly_Open dark open mouth (teeth when also smiling)
Mustache            a hair band above the upper lip
Narrow_Eyes         eye openings a third as high
No_Beard            no Goatee, Mustache or Sideburns
Oval_Face           a longer, narrower face ellipse
Pale_Skin           very light skin tone
Pointy_Nose         a pointed nose tip
Receding_Hairline   the hairline set high, with bare temples
Rosy_Cheeks         red blush on the cheeks
Sideburns           hair strips from the temples down beside the ears
Smiling             mouth corners up in a wide curve
Straight_Hair       long straight strands (wavy or plain otherwise)
Wavy_Hair           hair outline and strands drawn as waves
Wearing_Earrings    gold or silver rings at the ear lobes
Wearing_Hat         a brimmed hat over the hair
Wearing_Lipstick    saturated red or pink lips
Wearing_Necklace    a chain of beads at the neck
Wearing_Necktie     a collar and a tie on the shirt
Young               smooth skin; older faces get forehead and smile lines
==================  ===========================================================

Variety that is not an attribute: skin tone, eye colour, hair length, clothes and
background colours, pose (rotation, scale, shift), lighting direction and strength.
"""

from __future__ import annotations

import json
import os
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

import atomic
from attributes import ATTRIBUTES, INDEX
from cli import UsageError

WIDTH, HEIGHT = 178, 218
# Bumped whenever the drawing or the sampling changes, so ensure() re-renders old sets.
RENDERER_VERSION = 2
DEFAULT_COUNT = 20_000
PARTITION_SHARES = (0.8, 0.1, 0.1)  # train, val, test; CelebA's are 80.3/9.8/9.9 %
LABEL_ONLY = ("Attractive",)  # in the label file, not in the picture

# Measured on ../shared/celeba-89x109/list_attr_celeba.txt (20,000 rows):
# P(Male), then per attribute (P(a | female), P(a | male)).
P_MALE = 0.422
P_GIVEN_SEX: dict[str, tuple[float, float]] = {
    "5_o_Clock_Shadow": (0.000, 0.266),
    "Arched_Eyebrows": (0.419, 0.052),
    "Attractive": (0.686, 0.276),
    "Bags_Under_Eyes": (0.105, 0.341),
    "Bald": (0.000, 0.055),
    "Bangs": (0.201, 0.083),
    "Big_Lips": (0.303, 0.151),
    "Big_Nose": (0.101, 0.424),
    "Black_Hair": (0.203, 0.297),
    "Blond_Hair": (0.241, 0.022),
    "Blurry": (0.046, 0.059),
    "Brown_Hair": (0.240, 0.152),
    "Bushy_Eyebrows": (0.072, 0.243),
    "Chubby": (0.012, 0.119),
    "Double_Chin": (0.010, 0.097),
    "Eyeglasses": (0.024, 0.120),
    "Goatee": (0.000, 0.148),
    "Gray_Hair": (0.010, 0.086),
    "Heavy_Makeup": (0.663, 0.003),
    "High_Cheekbones": (0.555, 0.306),
    "Mouth_Slightly_Open": (0.520, 0.423),
    "Mustache": (0.000, 0.093),
    "Narrow_Eyes": (0.109, 0.125),
    "No_Beard": (0.999, 0.603),
    "Oval_Face": (0.319, 0.224),
    "Pale_Skin": (0.055, 0.027),
    "Pointy_Nose": (0.360, 0.161),
    "Receding_Hairline": (0.050, 0.117),
    "Rosy_Cheeks": (0.106, 0.005),
    "Sideburns": (0.000, 0.139),
    "Smiling": (0.537, 0.401),
    "Straight_Hair": (0.192, 0.241),
    "Wavy_Hair": (0.445, 0.139),
    "Wearing_Earrings": (0.311, 0.015),
    "Wearing_Hat": (0.025, 0.084),
    "Wearing_Lipstick": (0.810, 0.006),
    "Wearing_Necklace": (0.198, 0.018),
    "Wearing_Necktie": (0.000, 0.175),
    "Young": (0.881, 0.641),
}
# P(Mouth_Slightly_Open | sex, Smiling), indexed [male][smiling].
P_OPEN = ((0.232, 0.769), (0.214, 0.735))
HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
HAIR_TEXTURES = ("Straight_Hair", "Wavy_Hair")
BEARDS = ("Goatee", "Mustache", "Sideburns")
_GROUPED = {"Male", "Bald", "Bangs", "No_Beard", "Mouth_Slightly_Open"}
_GROUPED |= set(HAIR_COLOURS) | set(HAIR_TEXTURES) | set(BEARDS)


# ----------------------------------------------------------------------- attributes


def sample_attributes(count: int, seed: int = 0) -> np.ndarray:
    """Draw ``count`` CelebA-like attribute rows (uint8 0/1, official column order)."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((count, len(ATTRIBUTES)), np.uint8)
    male = rng.random(count) < P_MALE
    rows[:, INDEX["Male"]] = male

    def p(name: str) -> np.ndarray:
        female_p, male_p = P_GIVEN_SEX[name]
        return np.where(male, male_p, female_p)

    for name in ATTRIBUTES:
        if name not in _GROUPED:
            rows[:, INDEX[name]] = rng.random(count) < p(name)
    smiling = rows[:, INDEX["Smiling"]].astype(bool)
    p_open = np.asarray(P_OPEN)[male.astype(int), smiling.astype(int)]
    rows[:, INDEX["Mouth_Slightly_Open"]] = rng.random(count) < p_open

    bald = rng.random(count) < p("Bald")
    rows[:, INDEX["Bald"]] = bald
    has_hair = 1 - p("Bald")  # keep the hair attributes' overall rates despite Bald
    rows[:, INDEX["Bangs"]] = ~bald & (rng.random(count) < p("Bangs") / has_hair)
    _choose_one(rows, rng, HAIR_COLOURS, [p(n) / has_hair for n in HAIR_COLOURS], ~bald)
    _choose_one(rows, rng, HAIR_TEXTURES, [p(n) / has_hair for n in HAIR_TEXTURES], ~bald)

    no_beard = rng.random(count) < p("No_Beard")
    rows[:, INDEX["No_Beard"]] = no_beard
    bearded = np.maximum(1 - p("No_Beard"), 1e-6)
    for name in BEARDS:
        rows[:, INDEX[name]] = ~no_beard & (rng.random(count) < p(name) / bearded)
    return rows


def _choose_one(
    rows: np.ndarray,
    rng: np.random.Generator,
    names: tuple[str, ...],
    probabilities: list[np.ndarray],
    allowed: np.ndarray,
) -> None:
    """Set at most one of ``names`` per row, each with its given probability."""
    cumulative = np.cumsum(np.stack(probabilities, axis=1), axis=1)
    draw = rng.random(len(rows))[:, None]
    chosen = (draw < cumulative).argmax(axis=1)
    none = draw[:, 0] >= cumulative[:, -1]
    for k, name in enumerate(names):
        rows[:, INDEX[name]] = allowed & ~none & (chosen == k)


# -------------------------------------------------------------------------- drawing

_SKIN = np.array(
    [
        [224, 196, 178],
        [210, 172, 140],
        [190, 150, 120],
        [160, 118, 88],
        [120, 84, 60],
        [90, 62, 45],
    ],
    np.float32,
)
_PALE_SKIN = np.array([[248, 232, 222], [240, 224, 214]], np.float32)
_HAIR = {
    "Black_Hair": (25, 22, 22),
    "Blond_Hair": (222, 190, 110),
    "Brown_Hair": (110, 70, 40),
    "Gray_Hair": (165, 165, 165),
    "auburn": (140, 60, 30),
    "dark brown": (70, 45, 30),
}
_AA = cv2.LINE_AA


def _rgb(colour) -> tuple[int, int, int]:
    """OpenCV draws in BGR; the palettes here are RGB."""
    r, g, b = (int(c) for c in colour)
    return b, g, r


def _blend(image: np.ndarray, draw, alpha: float) -> None:
    """Draw with ``draw(layer)`` onto a copy and mix it in with opacity ``alpha``."""
    layer = image.copy()
    draw(layer)
    cv2.addWeighted(layer, alpha, image, 1 - alpha, 0, dst=image)


def _has(attrs: np.ndarray, name: str) -> bool:
    return bool(attrs[INDEX[name]])


def render_face(attrs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One 178x218 BGR uint8 face showing the attribute row ``attrs``."""
    a = {name: _has(attrs, name) for name in ATTRIBUTES}
    male = a["Male"]
    skin = (_PALE_SKIN[rng.integers(2)] if a["Pale_Skin"] else _SKIN[rng.integers(6)]).copy()
    skin += rng.normal(0, 6, 3)
    skin_c = _rgb(np.clip(skin, 0, 255))
    shade_c = _rgb(np.clip(skin * 0.78, 0, 255))
    hair_name = next(
        (n for n in ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair") if a[n]),
        ("auburn", "dark brown")[rng.integers(2)],
    )
    hair_c = _rgb(np.clip(np.array(_HAIR[hair_name]) + rng.normal(0, 8, 3), 0, 255))

    image = _background(rng)
    cx, cy = 89 + rng.normal(0, 1.5), 122 + rng.normal(0, 1.5)
    half_w = 40 * (1.14 if a["Chubby"] else 1.0) * (0.93 if a["Oval_Face"] else 1.0)
    half_w *= 1.06 if male else 1.0
    half_h = 52 * (1.1 if a["Oval_Face"] else 1.0)
    long_hair = not a["Bald"] and (rng.random() < (0.12 if male else 0.9))

    if long_hair or not (a["Bald"] or a["Wearing_Hat"]):
        _hair_back(image, a, rng, cx, cy, half_w, half_h, hair_c, long_hair)
    _body(image, a, rng, cx, cy, half_h, skin_c, shade_c)
    for side in (-1, 1):  # ears, with a ring at the lobe for Wearing_Earrings
        ear_x = int(cx + side * half_w * 0.98)
        cv2.ellipse(image, (ear_x, int(cy - 2)), (7, 13), 0, 0, 360, shade_c, -1, _AA)
        if a["Wearing_Earrings"]:
            metal = (40, 190, 235) if rng.random() < 0.6 else (225, 225, 225)
            cv2.circle(image, (ear_x + side * 2, int(cy + 15)), 4, metal, 2, _AA)
    if a["Double_Chin"]:
        _chin(image, (cx, cy + half_h * 0.88), (half_w * 0.55, 12), (0, 180), shade_c, -1)
    cv2.ellipse(image, (int(cx), int(cy)), (int(half_w), int(half_h)), 0, 0, 360, skin_c, -1, _AA)
    if a["Double_Chin"]:
        _chin(image, (cx, cy + half_h * 0.9), (half_w * 0.45, 9), (10, 170), shade_c, 2)
    _facial_hair(image, a, cx, cy, half_w, half_h, hair_c)
    _hair_front(image, a, rng, cx, cy, half_w, half_h, hair_c, skin_c)
    eye_y = cy - 10
    _eyes(image, a, rng, cx, eye_y, skin)
    _nose(image, a, cx, cy, shade_c)
    _mouth(image, a, rng, cx, cy, skin)
    _cheeks(image, a, cx, cy, half_w, skin)
    if not a["Young"]:  # forehead lines and smile lines, 2 px so they survive 64 px
        wrinkle = tuple(int(c * 0.8) for c in shade_c)
        for dy in (0, 7):
            cv2.ellipse(image, (int(cx), int(cy - 40 + dy)), (22, 6), 0, 200, 340, wrinkle, 2, _AA)
        for side in (-1, 1):
            cv2.ellipse(
                image,
                (int(cx + side * 18), int(cy + 22)),
                (6, 15),
                0,
                90 - side * 70,
                90 + side * 10,
                wrinkle,
                2,
                _AA,
            )
    if a["Wearing_Hat"]:
        _hat(image, rng, cx, cy, half_w, half_h)
    return _camera(image, a, rng)


def _chin(image, centre, axes, arc, colour, thickness: int) -> None:
    """An arc of the chin's ellipse (the double chin's shade, then its outline)."""
    (x, y), (half_width, height) = centre, axes
    cv2.ellipse(image, (int(x), int(y)), (int(half_width), height), 0, *arc, colour, thickness, _AA)


def _background(rng: np.random.Generator) -> np.ndarray:
    corners = rng.integers(30, 235, (2, 2, 3)).astype(np.uint8)
    return cv2.resize(corners, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)


def _wavy_outline(cx, top, bottom, half_width, waves: bool, rng) -> np.ndarray:
    """Closed outline of the hair mass; wavy edges when ``waves``."""
    t = np.linspace(-np.pi / 2, 3 * np.pi / 2, 60)
    x = np.cos(t) * half_width
    y = np.sin(t) * (bottom - top) * np.where(np.sin(t) < 0, 0.45, 0.55)
    if waves:
        x = x + np.sign(x) * 5 * np.sin(t * 9 + rng.random() * 6)
    centre_y = top + (bottom - top) * 0.45
    return np.stack([cx + x, centre_y + y], 1).astype(np.int32)


def _hair_back(image, a, rng, cx, cy, half_w, half_h, hair_c, long_hair) -> None:
    top = cy - half_h - (16 if a["Wavy_Hair"] else 11) - rng.uniform(0, 5)
    bottom = cy + (half_h + 70 if long_hair else 10)
    width = half_w + (18 if long_hair else 9) + (8 if a["Wavy_Hair"] else 0)
    outline = _wavy_outline(cx, top, bottom, width, a["Wavy_Hair"], rng)
    cv2.fillPoly(image, [outline], hair_c, _AA)
    dark = tuple(int(c * 0.6) for c in hair_c)
    if a["Straight_Hair"]:
        for dx in np.linspace(-width + 6, width - 6, 9):
            start, end = (int(cx + dx), int(top + 12)), (int(cx + dx * 1.05), int(bottom - 4))
            cv2.line(image, start, end, dark, 2, _AA)
    elif a["Wavy_Hair"]:
        ys = np.linspace(top + 10, bottom - 4, 24)
        for dx in np.linspace(-width + 8, width - 8, 7):
            xs = cx + dx + 4 * np.sin(ys / 6 + dx)
            cv2.polylines(image, [np.stack([xs, ys], 1).astype(np.int32)], False, dark, 1, _AA)


def _body(image, a, rng, cx, cy, half_h, skin_c, shade_c) -> None:
    """Neck and shirt; collar, tie and necklace sit just under the chin, inside the crop."""
    shirt = _rgb(rng.integers(20, 230, 3))
    neck_top, shoulder_y = int(cy + half_h * 0.6), int(cy + half_h + 10)
    cv2.ellipse(image, (int(cx), shoulder_y + 32), (80, 42), 0, 180, 360, shirt, -1, _AA)
    cv2.rectangle(image, (0, shoulder_y + 30), (WIDTH, HEIGHT), shirt, -1)
    cv2.rectangle(image, (int(cx - 17), neck_top), (int(cx + 17), shoulder_y), skin_c, -1)
    if a["Wearing_Necktie"]:
        for side in (-1, 1):
            wing = [
                [cx + side * 26, shoulder_y - 14],
                [cx + side * 3, shoulder_y + 2],
                [cx + side * 24, shoulder_y + 10],
            ]
            cv2.fillPoly(image, [np.array(wing, np.int32)], (245, 245, 245), _AA)
        tie = _rgb(rng.integers(0, 200, 3))
        blade = [
            [cx - 6, shoulder_y - 12],
            [cx + 6, shoulder_y - 12],
            [cx + 9, HEIGHT],
            [cx - 9, HEIGHT],
        ]
        cv2.fillPoly(image, [np.array(blade, np.int32)], tie, _AA)
        cv2.rectangle(
            image,
            (int(cx - 6), shoulder_y - 12),
            (int(cx + 6), shoulder_y - 3),
            tuple(int(c * 0.6) for c in tie),
            -1,
        )
    if a["Wearing_Necklace"]:
        metal = (60, 200, 230) if rng.random() < 0.5 else (215, 215, 215)
        for angle in np.linspace(15, 165, 13):
            x = cx + 21 * np.cos(np.radians(angle))
            y = cy + half_h - 2 + 9 * np.sin(np.radians(angle))
            cv2.circle(image, (int(x), int(y)), 2, metal, -1, _AA)


def _facial_hair(image, a, cx, cy, half_w, half_h, hair_c) -> None:
    if a["5_o_Clock_Shadow"]:
        stubble = (110, 100, 95)
        _blend(
            image,
            lambda layer: cv2.ellipse(
                layer,
                (int(cx), int(cy + 18)),
                (int(half_w * 0.9), int(half_h * 0.78)),
                0,
                15,
                165,
                stubble,
                -1,
                _AA,
            ),
            0.5,
        )
    if a["Sideburns"]:
        for side in (-1, 1):
            x = int(cx + side * half_w * 0.9)
            cv2.rectangle(
                image,
                (min(x, x - side * 9), int(cy - 20)),
                (max(x, x - side * 9), int(cy + 16)),
                hair_c,
                -1,
            )
    if a["Goatee"]:
        cv2.ellipse(image, (int(cx), int(cy + half_h * 0.82)), (13, 10), 0, 0, 360, hair_c, -1, _AA)
    if a["Mustache"]:
        cv2.ellipse(image, (int(cx), int(cy + 26)), (17, 5), 0, 180, 360, hair_c, -1, _AA)
        cv2.rectangle(image, (int(cx - 17), int(cy + 25)), (int(cx + 17), int(cy + 28)), hair_c, -1)


def _hair_front(image, a, rng, cx, cy, half_w, half_h, hair_c, skin_c) -> None:
    """The scalp: a hair cap with the hairline, bangs, or a bald dome."""
    if a["Bald"]:
        cv2.ellipse(
            image,
            (int(cx - 14), int(cy - half_h * 0.8)),
            (12, 6),
            -20,
            0,
            360,
            tuple(min(255, int(c * 1.15) + 15) for c in skin_c),
            -1,
            _AA,
        )
        return
    hairline = cy - half_h * (0.42 if a["Receding_Hairline"] else 0.62)
    cap = np.array(
        [
            [cx - half_w - 3, cy - 6],
            [cx - half_w * 0.8, hairline],
            [cx, hairline + (0 if a["Receding_Hairline"] else rng.uniform(-4, 4))],
            [cx + half_w * 0.8, hairline],
            [cx + half_w + 3, cy - 6],
            [cx + half_w + 6, cy - half_h - 8],
            [cx - half_w - 6, cy - half_h - 8],
        ],
        np.int32,
    )
    if a["Receding_Hairline"]:  # bare temples: an M-shaped line
        cap[1, 1] -= 10
        cap[3, 1] -= 10
        cap[2, 1] += 6
    cv2.fillPoly(image, [cap], hair_c, _AA)
    cv2.ellipse(
        image, (int(cx), int(cy - half_h + 4)), (int(half_w + 4), 22), 0, 180, 360, hair_c, -1, _AA
    )
    if a["Bangs"]:
        brow_y = cy - 20
        points = [[cx - half_w, cy - half_h * 0.5], [cx + half_w, cy - half_h * 0.5]]
        for x in np.linspace(cx + half_w * 0.85, cx - half_w * 0.85, 7):
            points.append([x, brow_y - rng.uniform(0, 5)])
        cv2.fillPoly(image, [np.array(points, np.int32)], hair_c, _AA)


def _eyes(image, a, rng, cx, eye_y, skin) -> None:
    iris = _rgb(((60, 40, 20), (90, 60, 30), (60, 100, 140), (70, 110, 70))[rng.integers(4)])
    open_h = 2 if a["Narrow_Eyes"] else 6
    dark = _rgb(np.clip(skin * 0.55, 0, 255))
    for side in (-1, 1):
        ex = int(cx + side * 19)
        if a["Heavy_Makeup"]:
            shadow = _rgb(((120, 60, 140), (60, 90, 160), (150, 90, 70))[rng.integers(3)])
            cv2.ellipse(image, (ex, int(eye_y - 3)), (12, 7), 0, 180, 360, shadow, -1, _AA)
        if a["Bags_Under_Eyes"]:
            cv2.ellipse(image, (ex, int(eye_y + 5)), (10, 5), 0, 20, 160, dark, 2, _AA)
        cv2.ellipse(image, (ex, int(eye_y)), (10, open_h), 0, 0, 360, (245, 245, 245), -1, _AA)
        cv2.circle(image, (ex, int(eye_y)), min(5, open_h + 1), iris, -1, _AA)
        cv2.circle(image, (ex, int(eye_y)), 2, (10, 10, 10), -1, _AA)
        cv2.ellipse(
            image,
            (ex, int(eye_y)),
            (10, open_h),
            0,
            180,
            360,
            (30, 30, 30),
            3 if a["Heavy_Makeup"] else 1,
            _AA,
        )
        brow_y = eye_y - 11
        arch = 7 if a["Arched_Eyebrows"] else 2
        thick = 5 if a["Bushy_Eyebrows"] else (3 if a["Male"] else 2)
        brow = np.array(
            [
                [ex - side * 11, brow_y + 2],
                [ex - side * 3, brow_y - arch],
                [ex + side * 11, brow_y + 1],
            ],
            np.int32,
        )
        cv2.polylines(image, [brow], False, (35, 35, 45), thick, _AA)
        if a["Eyeglasses"]:
            _blend(
                image,
                lambda layer, ex=ex: cv2.rectangle(
                    layer, (ex - 13, int(eye_y - 9)), (ex + 13, int(eye_y + 10)), (90, 60, 40), -1
                ),
                0.18,
            )
            cv2.rectangle(
                image, (ex - 13, int(eye_y - 9)), (ex + 13, int(eye_y + 10)), (20, 20, 20), 2, _AA
            )
    if a["Eyeglasses"]:
        cv2.line(
            image,
            (int(cx - 6), int(eye_y - 3)),
            (int(cx + 6), int(eye_y - 3)),
            (20, 20, 20),
            2,
            _AA,
        )


def _nose(image, a, cx, cy, shade_c) -> None:
    length, width = (24, 9) if a["Big_Nose"] else (17, 6)
    tip_y = cy - 6 + length
    if a["Pointy_Nose"]:
        points = np.array(
            [[cx - 2, cy - 6], [cx - width, tip_y - 2], [cx, tip_y + 4], [cx + width, tip_y - 2]],
            np.int32,
        )
        cv2.fillPoly(image, [points], shade_c, _AA)
    else:
        cv2.line(image, (int(cx - 2), int(cy - 6)), (int(cx - 3), int(tip_y - 3)), shade_c, 1, _AA)
        cv2.ellipse(image, (int(cx), int(tip_y)), (width, 4), 0, 0, 180, shade_c, 2, _AA)
    for side in (-1, 1):
        cv2.circle(
            image,
            (int(cx + side * width * 0.55), int(tip_y)),
            2 if width < 8 else 3,
            (40, 40, 60),
            -1,
            _AA,
        )


def _mouth(image, a, rng, cx, cy, skin) -> None:
    if a["Wearing_Lipstick"]:
        lip = _rgb(((200, 20, 40), (220, 60, 110), (170, 10, 30))[rng.integers(3)])
    else:
        lip = _rgb(np.clip(skin * np.array([0.95, 0.62, 0.62]), 0, 255))
    mouth_y, half = int(cy + 35), 18 if a["Smiling"] else 14
    thick = 5 if a["Big_Lips"] else 2
    curve = 8 if a["Smiling"] else 1
    if a["Mouth_Slightly_Open"]:
        cv2.ellipse(
            image,
            (int(cx), mouth_y + curve // 2),
            (half - 3, 5 + curve // 2),
            0,
            0,
            360,
            (40, 20, 30),
            -1,
            _AA,
        )
        if a["Smiling"]:
            cv2.rectangle(
                image,
                (int(cx - half + 7), mouth_y),
                (int(cx + half - 7), mouth_y + 3),
                (235, 235, 235),
                -1,
            )
    lower = np.array(
        [
            [cx - half, mouth_y - curve],
            [cx, mouth_y + (7 if a["Mouth_Slightly_Open"] else 1) + curve // 2],
            [cx + half, mouth_y - curve],
        ],
        np.float64,
    )
    upper = np.array(
        [[cx - half, mouth_y - curve], [cx, mouth_y - 2], [cx + half, mouth_y - curve]], np.float64
    )
    for points, width in ((lower, thick + 1), (upper, thick)):
        t = np.linspace(0, 1, 12)[:, None]
        curve_pts = (1 - t) ** 2 * points[0] + 2 * t * (1 - t) * points[1] + t**2 * points[2]
        cv2.polylines(image, [curve_pts.astype(np.int32)], False, lip, width, _AA)


def _cheeks(image, a, cx, cy, half_w, skin) -> None:
    if a["High_Cheekbones"]:
        light = _rgb(np.clip(skin * 1.12 + 10, 0, 255))
        dark = _rgb(np.clip(skin * 0.8, 0, 255))
        for side in (-1, 1):
            x = int(cx + side * half_w * 0.58)
            cv2.ellipse(image, (x, int(cy + 6)), (9, 4), side * 20, 0, 360, light, -1, _AA)
            cv2.ellipse(image, (x, int(cy + 15)), (10, 3), side * 25, 0, 180, dark, 1, _AA)
    if a["Rosy_Cheeks"]:

        def blush(layer):
            for side in (-1, 1):
                cv2.circle(
                    layer, (int(cx + side * half_w * 0.6), int(cy + 12)), 10, (90, 90, 235), -1, _AA
                )

        _blend(image, blush, 0.45)


def _hat(image, rng, cx, cy, half_w, half_h) -> None:
    colour = _rgb(rng.integers(10, 220, 3))
    brim_y = int(cy - half_h * 0.55)
    cv2.rectangle(
        image, (int(cx - half_w * 0.95), brim_y - 38), (int(cx + half_w * 0.95), brim_y), colour, -1
    )
    cv2.ellipse(image, (int(cx), brim_y), (int(half_w * 1.45), 8), 0, 0, 360, colour, -1, _AA)
    band = tuple(int(c * 0.5) for c in colour)
    cv2.rectangle(
        image,
        (int(cx - half_w * 0.95), brim_y - 10),
        (int(cx + half_w * 0.95), brim_y - 4),
        band,
        -1,
    )


def _camera(image: np.ndarray, a: dict[str, bool], rng: np.random.Generator) -> np.ndarray:
    """Pose jitter, directional light, blur and sensor noise."""
    angle, scale = rng.normal(0, 4), rng.uniform(0.93, 1.07)
    matrix = cv2.getRotationMatrix2D((89, 120), angle, scale)
    matrix[:, 2] += rng.normal(0, 2.5, 2)
    image = cv2.warpAffine(image, matrix, (WIDTH, HEIGHT), borderMode=cv2.BORDER_REFLECT)
    light = rng.uniform(0.75, 1.2, (2, 2)).astype(np.float32)
    gain = cv2.resize(light, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
    image = cv2.multiply(image, cv2.merge([gain] * 3), dtype=cv2.CV_8U)
    if a["Blurry"]:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(2.0, 3.0))
    cv2.setRNGSeed(int(rng.integers(2**31)))  # OpenCV's generator is much faster than numpy's
    noise = cv2.randn(np.empty(image.shape, np.int16), 0, 3)
    return cv2.add(image, noise, dtype=cv2.CV_8U)


# -------------------------------------------------------------------------- writing


def _render_chunk(job: tuple[str, int, int, np.ndarray]) -> int:
    """Worker: render and save images ``start .. start+len(rows)-1``."""
    image_dir, seed, start, rows = job
    for offset, attrs in enumerate(rows):
        number = start + offset + 1
        face = render_face(attrs, np.random.default_rng([seed, number]))
        cv2.imwrite(
            os.path.join(image_dir, f"{number:06d}.jpg"), face, [cv2.IMWRITE_JPEG_QUALITY, 92]
        )
    return len(rows)


def _partition_of(count: int) -> np.ndarray:
    train, val = (round(count * share) for share in PARTITION_SHARES[:2])
    return np.repeat([0, 1, 2], [train, val, count - train - val])


def write_label_files(out: Path, rows: np.ndarray) -> None:
    """The two label files, laid out as the official ones."""
    names = [f"{i:06d}.jpg" for i in range(1, len(rows) + 1)]
    values = np.where(rows > 0, 1, -1)
    lines = [str(len(rows)), " ".join(ATTRIBUTES) + " "]
    lines += [name + "".join(f"{v:3d}" for v in row) for name, row in zip(names, values)]
    (out / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    partition = _partition_of(len(rows))
    (out / "list_eval_partition.txt").write_text(
        "".join(f"{name} {p}\n" for name, p in zip(names, partition))
    )


def write_dataset(
    out: str | os.PathLike,
    count: int = DEFAULT_COUNT,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Render ``count`` faces into ``out`` in the official layout, atomically. ``out``
    may be new, empty or an earlier render; anything else is the user's and refused."""
    out = Path(out)
    if out.exists() and not (out.is_dir() and (is_synthetic(out) or not any(out.iterdir()))):
        raise UsageError(
            f"--out {out}: holds other files than a synthetic set; choose a new or empty folder"
        )
    with atomic.building(out) as staging:
        (staging / "img_align_celeba").mkdir()
        rows = sample_attributes(count, seed)
        chunk = 200
        jobs = [
            (str(staging / "img_align_celeba"), seed, s, rows[s : s + chunk])
            for s in range(0, count, chunk)
        ]
        with (
            tqdm(total=count, unit="img", desc="rendering faces", disable=not progress) as bar,
            Pool(workers or os.cpu_count()) as pool,
        ):
            for done in pool.imap_unordered(_render_chunk, jobs):
                bar.update(done)
        write_label_files(staging, rows)
        (staging / "synthetic.json").write_text(json.dumps(_identity(count, seed)) + "\n")
    return out


def _identity(count: int, seed: int) -> dict:
    return {"renderer_version": RENDERER_VERSION, "count": count, "seed": seed}


def is_synthetic(root: str | os.PathLike) -> bool:
    """Whether a data root was written by this renderer (any version)."""
    return (Path(root) / "synthetic.json").is_file()


def ensure(out: str | os.PathLike, count: int = DEFAULT_COUNT, seed: int = 0) -> Path:
    """Render the set into ``out`` unless this renderer already made it there."""
    out = Path(out)
    try:
        if json.loads((out / "synthetic.json").read_text()) == _identity(count, seed):
            return out
    except (OSError, ValueError):
        pass
    return write_dataset(out, count, seed)
