"""The 40 CelebA attribute names and the parser for users' attribute requests.

This is the single attribute vocabulary of the project: the dataset reader, the
synthetic renderer, the input generators, training, generation and the notebook all
take the names and their order from here. It does not sample or encode attributes
(that is dataGens.py); it only names them and turns a request such as
``"Smiling=0.7, Eyeglasses, not Male"`` into forced strengths: 0 is off, 1 is on, and
values between interpolate the generator's conditioning.
"""

from __future__ import annotations

import difflib
import math
import re

from cli import CommandError

# Column order of the official list_attr_celeba.txt; attribute vectors use this order.
ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
)
NUM_ATTRIBUTES = len(ATTRIBUTES)
INDEX = {name: i for i, name in enumerate(ATTRIBUTES)}

# The web page's sections (serve.py); every attribute is in exactly one.
GROUPS: dict[str, tuple[str, ...]] = {
    "age and sex": ("Male", "Young"),
    "expression": ("Smiling", "Mouth_Slightly_Open"),
    "accessories": (
        "Eyeglasses",
        "Wearing_Hat",
        "Heavy_Makeup",
        "Wearing_Lipstick",
        "Wearing_Earrings",
        "Wearing_Necklace",
        "Wearing_Necktie",
    ),
    "hair and beard": (
        "Black_Hair",
        "Blond_Hair",
        "Brown_Hair",
        "Gray_Hair",
        "Bald",
        "Bangs",
        "Receding_Hairline",
        "Straight_Hair",
        "Wavy_Hair",
        "No_Beard",
        "5_o_Clock_Shadow",
        "Goatee",
        "Mustache",
        "Sideburns",
    ),
    "face": (
        "Attractive",
        "Oval_Face",
        "Chubby",
        "Double_Chin",
        "High_Cheekbones",
        "Pale_Skin",
        "Rosy_Cheeks",
        "Arched_Eyebrows",
        "Bushy_Eyebrows",
        "Bags_Under_Eyes",
        "Narrow_Eyes",
        "Big_Lips",
        "Big_Nose",
        "Pointy_Nose",
        "Blurry",
    ),
}

# Everyday words users type for an attribute setting.
_ALIASES: dict[str, tuple[str, bool]] = {
    "female": ("Male", False),
    "woman": ("Male", False),
    "man": ("Male", True),
    "glasses": ("Eyeglasses", True),
    "beard": ("No_Beard", False),
    "old": ("Young", False),
    "smile": ("Smiling", True),
    "hat": ("Wearing_Hat", True),
}
_NEGATION_SIGNS = ("-", "!", "~")
_NEGATION_WORDS = ("not ", "no ", "non ")
# Strengths above 1 exaggerate an attribute. Training only ever shows 0 and 1, so the
# range past 1 a request may ask for is kept short.
MAX_STRENGTH = 1.5


class SpecError(CommandError, ValueError):
    """An attribute request that cannot be understood; the message says why."""


def _key(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


_BY_KEY = {_key(name): (name, True) for name in ATTRIBUTES} | {
    _key(word): setting for word, setting in _ALIASES.items()
}


def _resolve(token: str) -> tuple[str, bool]:
    """One term such as ``"Eyeglasses"``, ``"-Male"`` or ``"not smiling"``."""
    text = token.strip()
    if text[:1] in _NEGATION_SIGNS:
        name, value = _resolve(text[1:])
        return name, not value
    if text[:1] == "+":
        return _resolve(text[1:])
    if _key(text) in _BY_KEY:  # before negation words, so "No_Beard" stays itself
        return _BY_KEY[_key(text)]
    for prefix in _NEGATION_WORDS:
        if text.lower().startswith(prefix):
            name, value = _resolve(text[len(prefix) :])
            return name, not value
    close = difflib.get_close_matches(_key(text), list(_BY_KEY), n=1, cutoff=0.7)
    hint = f" Did you mean {_BY_KEY[close[0]][0]}?" if close else ""
    raise SpecError(f"unknown attribute {text!r}.{hint} Valid names: {', '.join(ATTRIBUTES)}")


def _term(text: str) -> tuple[str, float]:
    """One term with its strength: ``"Smiling=0.7"``, ``"woman=0.7"`` (Male 0.3),
    ``"-Male"`` (0) or ``"Eyeglasses"`` (1)."""
    words, sep, number = text.partition("=")
    name, on = _resolve(words)
    if not sep:
        return name, float(on)
    if words.strip()[:1] in (*_NEGATION_SIGNS, "+") or _key(words) not in _BY_KEY:
        raise SpecError(f"{text.strip()!r}: give a sign or a strength, not both (e.g. {name}=0.3)")
    try:
        strength = float(number)
    except ValueError:
        raise SpecError(
            f"{text.strip()!r}: the strength must be a number from 0 to {MAX_STRENGTH}"
        ) from None
    if not (math.isfinite(strength) and 0 <= strength <= MAX_STRENGTH):
        raise SpecError(
            f"{text.strip()!r}: the strength must be from 0 (off) to {MAX_STRENGTH} (1 is on)"
        )
    if on:
        return name, strength
    if strength > 1:
        raise SpecError(
            f"{text.strip()!r}: {words.strip()} means {name} off; give a strength from 0 to 1"
        )
    return name, round(1 - strength, 6)


def parse_spec(spec: str) -> dict[str, float]:
    """Parse ``"Smiling=0.7, Eyeglasses, -Male"`` into ``{"Smiling": 0.7, "Eyeglasses":
    1.0, "Male": 0.0}``.

    Terms are separated by commas or semicolons (or spaces, when every word is an
    attribute); case, underscores and spaces inside names do not matter; ``-``, ``!``,
    ``~``, ``not`` or ``no`` switch an attribute off; ``=S`` sets its strength, from 0
    (off) to MAX_STRENGTH (1 is on).
    """
    settings: dict[str, float] = {}
    for term in filter(str.strip, re.split(r"[,;]", spec)):
        try:
            pairs = [_term(term)]
        except SpecError:
            words = term.split()
            if len(words) < 2:
                raise
            try:
                pairs = [_term(word) for word in words]
            except SpecError:
                raise SpecError(_term_error(term)) from None
        for name, strength in pairs:
            if settings.get(name, strength) != strength:
                raise SpecError(
                    f"attribute {name} is asked {_both(settings[name], strength)} in {spec!r}"
                )
            settings[name] = strength
    return settings


def _both(first: float, second: float) -> str:
    if {first, second} == {0, 1}:
        return "both on and off"
    return f"at two strengths, {first:g} and {second:g},"


def _term_error(term: str) -> str:
    try:
        _term(term)
    except SpecError as error:
        return str(error)
    return f"cannot read {term!r}"


def format_spec(settings: dict[str, float]) -> str:
    """The canonical text of a request: ``"Smiling=0.7, Eyeglasses, -Male"``."""
    return ", ".join(_format_term(name, strength) for name, strength in settings.items())


def _format_term(name: str, strength: float) -> str:
    if strength == 1:
        return name
    return f"-{name}" if strength == 0 else f"{name}={float(strength)!r}"
