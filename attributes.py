"""The 40 CelebA attribute names and the parser for users' attribute requests.

This is the single attribute vocabulary of the project: the dataset reader, the
synthetic renderer, the input generators, training, generation and the notebook all
take the names and their order from here. It does not sample or encode attributes
(that is dataGens.py); it only names them and turns a request such as
``"Smiling, Eyeglasses, not Male"`` into forced values.
"""

from __future__ import annotations

import difflib
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


def parse_spec(spec: str) -> dict[str, bool]:
    """Parse ``"Smiling, Eyeglasses, -Male"`` into ``{"Smiling": True, ...}``.

    Terms are separated by commas or semicolons (or spaces, when every word is an
    attribute); case, underscores and spaces inside names do not matter; ``-``, ``!``,
    ``~``, ``not`` or ``no`` switch an attribute off.
    """
    settings: dict[str, bool] = {}
    for term in filter(str.strip, re.split(r"[,;]", spec)):
        try:
            pairs = [_resolve(term)]
        except SpecError:
            words = term.split()
            if len(words) < 2:
                raise
            try:
                pairs = [_resolve(word) for word in words]
            except SpecError:
                raise SpecError(_resolve_error(term)) from None
        for name, value in pairs:
            if settings.get(name, value) != value:
                raise SpecError(f"attribute {name} is asked both on and off in {spec!r}")
            settings[name] = value
    return settings


def _resolve_error(term: str) -> str:
    try:
        _resolve(term)
    except SpecError as error:
        return str(error)
    return f"cannot read {term!r}"


def format_spec(settings: dict[str, bool]) -> str:
    """The canonical text of a request: ``"Smiling, Eyeglasses, -Male"``."""
    return ", ".join(name if on else f"-{name}" for name, on in settings.items())
