"""A launched demo round served in-process, with the researcher token and secret key known to the tests."""

from __future__ import annotations

import pytest

from tests.reliability.harness import DESIGNS
from tests.reliability.inproc import start


@pytest.fixture
def demo(tmp_path):
    study = start(tmp_path, DESIGNS / "demo.toml", "r1")
    yield study
    study.close()
