"""Shared test options: `--update-golden` rewrites golden files instead of comparing with them."""

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/golden/ from the current output (review the diff like code)")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return request.config.getoption("--update-golden")


@pytest.fixture(scope="module")
def evaluator():
    """The evaluator of the repository's own specs (loaded once per test module)."""
    from opdoc.pipeline import Paths, load
    from opdoc_testing import ROOT

    _, ev = load(Paths(root=ROOT))
    return ev


@pytest.fixture(scope="module")
def index():
    """The checkpoint's weight index, as the repository holds it."""
    from opdoc_testing import load_weight_index

    return load_weight_index()
