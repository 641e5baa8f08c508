"""Property-based tests (Hypothesis) of every parser of user input and of every schema
of a file read back: any input either parses to the right value or raises the
module's own error (a CommandError with a message), never another exception."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dataset
import runs
import schemas
from attributes import ATTRIBUTES, MAX_STRENGTH, SpecError, format_spec, parse_spec
from cli import CommandError
from config import RunSettings

# The same 150 examples on every run, so CI is repeatable; FUZZ_EXAMPLES=5000 searches
# further, with fresh random examples.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=EXAMPLES == 150,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
NAMES = st.from_regex(r"[0-9]{6}\.jpg", fullmatch=True)
REQUESTS = st.dictionaries(st.sampled_from(ATTRIBUTES), st.booleans(), max_size=8)
STRENGTHS = st.dictionaries(
    st.sampled_from(ATTRIBUTES),
    st.floats(0, MAX_STRENGTH, allow_nan=False),
    max_size=8,
)


def parsed_or_refused(parse, text):
    """parse(text), or None when it raised the module's own error with a message."""
    try:
        return parse(text)
    except CommandError as error:
        assert str(error).strip() and "\n" not in str(error).strip()
        return None


# ------------------------------------------------------------------- attribute spec


@FUZZ
@given(st.text(max_size=80))
def test_any_spec_text_parses_to_known_attributes_or_is_refused(text):
    result = parsed_or_refused(parse_spec, text)
    assert result is None or set(result) <= set(ATTRIBUTES)
    assert result is None or all(0 <= s <= MAX_STRENGTH for s in result.values())


@FUZZ
@given(REQUESTS, st.sampled_from([", ", ",", "; ", " ,  "]))
def test_a_request_survives_formatting_and_parsing(request, separator):
    text = separator.join(name if on else f"-{name}" for name, on in request.items())
    assert parse_spec(text) == request
    assert parse_spec(format_spec(request)) == request
    assert parse_spec(format_spec(request).lower().replace("_", " ")) == request


@FUZZ
@given(STRENGTHS)
def test_a_request_with_strengths_survives_formatting_and_parsing(request):
    assert parse_spec(format_spec(request)) == request


def test_an_attribute_asked_both_ways_is_refused():
    with pytest.raises(SpecError, match="asked both on and off"):
        parse_spec("Smiling, not smiling")


# -------------------------------------------------------------------- label files


def read_text(suffix: str, content: bytes, read):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"list{suffix}"
        path.write_bytes(content)
        return parsed_or_refused(read, path)


LABELS = st.lists(
    st.tuples(NAMES, st.lists(st.sampled_from([-1, 1]), min_size=40, max_size=40)),
    min_size=1,
    max_size=6,
    unique_by=lambda row: row[0],
)


def official(rows, gap: str = " ") -> bytes:
    lines = [str(len(rows)), " ".join(ATTRIBUTES)]
    lines += [name + gap + gap.join(f"{v:2d}" for v in values) for name, values in rows]
    return ("\n".join(lines) + "\n").encode()


def kaggle(rows) -> bytes:
    lines = [",".join(["image_id", *ATTRIBUTES])]
    lines += [",".join([name, *map(str, values)]) for name, values in rows]
    return ("\n".join(lines) + "\n").encode()


@FUZZ
@given(LABELS, st.sampled_from([" ", "  ", "\t"]), st.sampled_from(["official", "kaggle"]))
def test_a_label_file_in_either_layout_reads_back_its_values(rows, gap, layout):
    content, suffix = (
        (official(rows, gap), ".txt") if layout == "official" else (kaggle(rows), ".csv")
    )
    frame = read_text(suffix, content, dataset.read_attributes)
    expected = np.array([values for _, values in rows]) > 0
    assert list(frame.index) == [name for name, _ in rows]
    assert (frame.to_numpy() == expected).all()


@FUZZ
@given(LABELS, st.sampled_from([".txt", ".csv"]), st.data())
def test_a_damaged_label_file_reads_or_is_refused(rows, suffix, data):
    content = official(rows) if suffix == ".txt" else kaggle(rows)
    start = data.draw(st.integers(0, len(content)))
    junk = data.draw(st.binary(max_size=12))
    damaged = content[:start] + junk + content[start + data.draw(st.integers(0, 12)) :]
    read_text(suffix, damaged, dataset.read_attributes)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([".txt", ".csv"]))
def test_any_bytes_as_a_label_file_read_or_are_refused(content, suffix):
    read_text(suffix, content, dataset.read_attributes)


PARTITIONS = st.dictionaries(NAMES, st.sampled_from([0, 1, 2]), min_size=1, max_size=8)


@FUZZ
@given(PARTITIONS, st.sampled_from([".txt", ".csv"]))
def test_a_partition_file_reads_back_its_splits(splits, suffix):
    if suffix == ".txt":
        content = "".join(f"{name} {split}\n" for name, split in splits.items())
    else:
        content = "image_id,partition\n" + "".join(f"{n},{s}\n" for n, s in splits.items())
    series = read_text(suffix, content.encode(), dataset.read_partition)
    assert series.to_dict() == splits


@FUZZ
@given(st.binary(max_size=200), st.sampled_from([".txt", ".csv"]))
def test_any_bytes_as_a_partition_file_read_or_are_refused(content, suffix):
    series = read_text(suffix, content, dataset.read_partition)
    assert series is None or series.isin([0, 1, 2]).all()


# ------------------------------------------------------------------- JSON schemas

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
STATE = runs.checkpoint_state((3, 7), RunSettings(data="/data"), 12.5, 0.8)


def edits(base: dict):
    """``base`` with one key at some depth replaced by any JSON value, or removed."""
    keys = st.sampled_from(sorted(base))
    return st.tuples(keys, JSON | st.just(KeyError)).map(lambda edit: _edited(base, *edit))


def _edited(base: dict, key: str, value) -> dict:
    if value is KeyError:
        return {k: v for k, v in base.items() if k != key}
    return {**base, key: value}


def check_file(content: bytes, schema):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "file.json"
        path.write_bytes(content)
        data, problem = schemas.parse_json(path, schema)
    assert (data is None) != (problem is None)
    assert problem is None or (problem and "\n" not in problem)
    return data


def test_a_written_state_reads_back_as_written():
    assert check_file(json.dumps(STATE).encode(), schemas.STATE)["settings"] == {
        **STATE["settings"],
        "lr": None,
    }


@FUZZ
@given(st.one_of(edits(STATE), edits(STATE["settings"]).map(lambda s: {**STATE, "settings": s})))
def test_an_edited_state_reads_or_names_what_is_wrong(state):
    data = check_file(json.dumps(state).encode(), schemas.STATE)
    if data is not None:
        RunSettings(**{k: data["settings"][k] for k in RunSettings.FIXED})  # usable as read


@FUZZ
@given(st.one_of(JSON.map(json.dumps).map(str.encode), st.binary(max_size=60)))
def test_any_content_as_a_metadata_file_reads_or_names_what_is_wrong(content):
    for schema in (
        schemas.STATE,
        schemas.CHECKPOINT_MANIFEST,
        schemas.CACHE_MANIFEST,
        schemas.REPORT,
        schemas.QUALITY_REPORT,
    ):
        check_file(content, schema)


@FUZZ
@given(st.dictionaries(st.text(max_size=12), JSON, max_size=3))
def test_a_checkpoint_manifest_names_only_plain_files(manifest):
    data = check_file(json.dumps(manifest).encode(), schemas.CHECKPOINT_MANIFEST)
    assert data is None or all("/" not in name and name not in ("..", ".") for name in data)
