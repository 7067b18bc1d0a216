"""torch.nn.parallel's and torch.distributed's import paths, as nanoGPT's train.py names them:

    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.distributed import init_process_group, destroy_process_group

exist under nanoframe, and importing them never imports mpi4py (only init_process_group does)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import nanoframe as nf
from nanoframe import distributed as dist


def _clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_COMM", "PMI", "PMIX"))}


def test_nanogpt_import_lines_resolve_without_importing_mpi4py():
    code = ("import sys\n"
            "import nanoframe as torch\n"
            "from nanoframe.nn.parallel import DistributedDataParallel as DDP\n"
            "from nanoframe.distributed import init_process_group, destroy_process_group\n"
            "import nanoframe.distributed as d\n"
            "assert DDP is d.DistributedDataParallel is torch.nn.parallel.DistributedDataParallel\n"
            "assert callable(init_process_group) and callable(destroy_process_group)\n"
            "assert torch.nn.DataParallel is torch.nn.parallel.DataParallel\n"
            "assert 'mpi4py' not in sys.modules, 'mpi4py imported'\n"
            "print('clean')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_clean_env())
    assert out.stdout.strip() == "clean", out.stderr


def test_ddp_takes_torchs_arguments_and_refuses_devices():
    model = nf.nn.Linear(3, 2)
    ddp = nf.nn.parallel.DistributedDataParallel(model, device_ids=None, output_device=None, broadcast_buffers=False)
    x = nf.ones(4, 3)
    assert np.array_equal(ddp(x).detach().numpy(), model(x).detach().numpy())
    assert sorted(ddp.state_dict()) == ["module.bias", "module.weight"]
    with pytest.raises(ValueError, match="device_ids and output_device must be None"):
        nf.nn.parallel.DistributedDataParallel(model, [0])      # torch's second positional: device_ids
    with pytest.raises(ValueError, match="device_ids and output_device must be None"):
        nf.nn.parallel.DistributedDataParallel(model, output_device=0)
    with pytest.raises(ValueError, match="dim=0"):
        nf.nn.parallel.DistributedDataParallel(model, dim=1)


def test_data_parallel_on_a_machine_without_gpus_is_a_pass_through():
    """As torch.nn.DataParallel without CUDA: device_ids == [], forward calls the module, the
    state_dict keys gain "module."."""
    model = nf.nn.Linear(3, 2)
    dp = nf.nn.DataParallel(model, device_ids=[0, 1])
    x = nf.randn(5, 3)
    assert dp.device_ids == [] and dp.module is model
    assert np.array_equal(dp(x).detach().numpy(), model(x).detach().numpy())
    assert sorted(dp.state_dict()) == ["module.bias", "module.weight"]
    dp(x).sum().backward()
    assert model.weight.grad is not None


def test_data_parallel_matches_torch_without_cuda():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("torch has a GPU here")
    t = torch.nn.DataParallel(torch.nn.Linear(3, 2), device_ids=[0])
    n = nf.nn.DataParallel(nf.nn.Linear(3, 2), device_ids=[0])
    assert t.device_ids == n.device_ids == []
    assert list(t.state_dict()) == list(n.state_dict())


def test_destroy_process_group_without_a_group_is_refused():
    assert not dist.is_initialized()
    with pytest.raises(ValueError, match="no process group to destroy"):
        dist.destroy_process_group()


def test_init_then_destroy_process_group_in_one_process():
    pytest.importorskip("mpi4py")
    code = ("from nanoframe import distributed as dist\n"
            "assert dist.init_process_group() == 1 and dist.is_initialized()\n"
            "dist.destroy_process_group()\n"
            "assert not dist.is_initialized() and dist.get_rank() == 0 and dist.get_world_size() == 1\n"
            "assert dist.init_process_group('mpi') == 1\n"
            "dist.destroy_process_group()\n"
            "print('ok')")
    env = dict(_clean_env(), OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
