"""convscope.io: atomic writes leave no temporary file and create files as any other program would."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch

from convscope.io import atomic_write_bytes, read_json, save_npz, write_json
from convscope.train.checkpoint import save_checkpoint


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_get_the_usual_permissions_under_the_umask(tmp_path, umask):
    plain = tmp_path / "plain"
    with open(plain, "wb"):  # the oracle: what any program's new file gets
        pass
    assert _mode(plain) == 0o666 & ~umask
    written = [atomic_write_bytes(tmp_path / "a.bin", b"x"), write_json(tmp_path / "sub" / "b.json", {"k": 1}),
               save_npz(tmp_path / "c.npz", a=np.zeros(3))]
    model = torch.nn.Linear(2, 1)
    save_checkpoint(tmp_path / "ckpt", model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), epoch=1,
                    step=1, config={}, provenance={})
    written += sorted((tmp_path / "ckpt").iterdir())
    for path in written:
        assert _mode(path) == _mode(plain), path.name
    # overwriting keeps the content right and leaves no temporary file
    write_json(tmp_path / "sub" / "b.json", {"k": 2})
    assert read_json(tmp_path / "sub" / "b.json") == {"k": 2}
    assert not [p for p in tmp_path.rglob("*.tmp")]
