"""The one conftest of the test suite.

Import convention: tests/ and every folder in it are packages, and pytest puts the repository root
on sys.path, so tests import shared code by its full name: `from tests.helpers.runs import cli`,
`from tests.helpers.fused import gradcheck, parity`, `from tests.helpers import SHARED_DATA`; code
that belongs to one folder is imported relatively or by its full name (`from .cases import SHAPE`,
`from tests.tokenizer.hf_families import build`). No test edits sys.path. Test file names carry no
folder prefix (tests/nn/test_layers.py, not test_nn_layers.py): the package already says it.
Scripts that a test runs in a subprocess (tests/distributed/guarded_rank.py) import only nanoframe.
"""
import pytest

from tests.helpers import SHARED_DATA
from tests.helpers.runs import SHAKESPEAREISH


@pytest.fixture
def corpus(tmp_path):
    """A 6 KB shakespeare-like text file."""
    p = tmp_path / "input.txt"
    p.write_text(SHAKESPEAREISH)
    return p


@pytest.fixture(scope="session")
def shared_data():
    """../shared/data (see tests/helpers); the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared reference data is absent ({SHARED_DATA})")
    return SHARED_DATA
