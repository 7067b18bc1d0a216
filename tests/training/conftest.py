import pytest

from run_helpers import SHAKESPEAREISH


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "input.txt"
    p.write_text(SHAKESPEAREISH)
    return p
