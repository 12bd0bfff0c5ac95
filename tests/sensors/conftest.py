
import pytest

from support import fake_boards  # noqa: E402


@pytest.fixture(params=fake_boards.board_names())
def board(request, tmp_path):
    """(board name, root of its fake sysfs/procfs tree)."""
    return request.param, fake_boards.build(request.param, tmp_path / request.param)
