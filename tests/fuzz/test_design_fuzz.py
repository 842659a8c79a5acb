"""Design loading under random mutation: a broken design is always a DesignError naming the problem, never a crash."""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from study_designs.schema import Design, DesignError, load_design, parse_design

DESIGNS = Path(__file__).resolve().parents[2] / "study_designs"
BASES = {name: tomllib.loads((DESIGNS / name).read_text()) for name in ("demo.toml", "scoft-cvpr2024.toml")}
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", " ", "<script>", "${NOPE}", "{culture}", "../../etc/passwd", "\x00", "é" * 3]),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=4),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _parent(root, path):
    node = root
    for key in path[:-1]:
        node = node[key]
    return node


@st.composite
def mutated(draw):
    name = draw(st.sampled_from(sorted(BASES)))
    data = copy.deepcopy(BASES[name])
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = [p for p in _paths(data) if p]
        path = draw(st.sampled_from(paths))
        parent = _parent(data, path)
        action = draw(st.sampled_from(["replace", "delete", "add", "duplicate"]))
        if action == "replace":
            parent[path[-1]] = draw(junk)
        elif action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(junk)
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
    return data


@FUZZ
@given(data=mutated())
def test_mutated_designs_parse_or_raise_design_error(data):
    try:
        design = parse_design(data, "fuzz.toml")
    except DesignError as err:
        assert str(err).startswith("fuzz.toml")
        return
    assert isinstance(design, Design)
    for c in design.cultures:  # a design that loads is usable
        assert design.participants_needed(c.id) >= 1
        assert all(math.isfinite(p.seed) for p in design.pages(c.id))


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(blob=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)), cut=st.integers(0, 4000))
def test_any_file_content_loads_or_raises_design_error(tmp_path_factory, blob, cut):
    path = tmp_path_factory.mktemp("d") / "design.toml"
    text = (DESIGNS / "demo.toml").read_bytes()
    path.write_bytes(text[:cut] + blob + text[cut:])
    try:
        load_design(path)
    except DesignError as err:
        assert str(path) in str(err)


def test_unreadable_design_files_raise_design_error(tmp_path):
    for content in (b"\xff\xfe\x00bad", b'id = "\xc3\x28"\n'):
        p = tmp_path / "bad.toml"
        p.write_bytes(content)
        try:
            load_design(p)
        except DesignError as err:
            assert "bad.toml" in str(err)
        else:
            raise AssertionError("a non-UTF-8 design loaded")
    try:
        load_design(tmp_path)  # a folder
    except DesignError as err:
        assert str(tmp_path) in str(err)
    else:
        raise AssertionError("a folder loaded as a design")
