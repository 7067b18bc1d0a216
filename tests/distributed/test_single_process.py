"""Without mpiexec (and without mpi4py): nothing changes, nothing is imported; the pieces the
distributed trainer stands on, checked in one process (batch sharding, the checkpoint schema,
post-accumulate-grad hooks)."""
import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanoframe import distributed as dist
from nanoframe.autograd import register_post_accumulate_grad_hook
from nanoframe.data.instructions import IGNORE_INDEX, InstructionData
from nanoframe.errors import CheckpointError
from nanoframe.models import GPT, GPTConfig
from nanoframe.random import get_rng_state, manual_seed
from nanoframe.training.checkpoint import read_state


def test_import_nanoframe_and_train_does_not_import_mpi4py():
    code = ("import sys, numpy as np, nanoframe, nanoframe.distributed, nanoframe.training.trainer\n"
            "from nanoframe.models import GPT, GPTConfig\n"
            "m = GPT(GPTConfig(vocab_size=10, block_size=4, n_layer=1, n_head=1, n_embd=8))\n"
            "m(np.zeros((1, 4), np.int64), np.zeros((1, 4), np.int64))[1].backward()\n"
            "assert 'mpi4py' not in sys.modules, 'mpi4py imported'\nprint('clean')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={
        k: v for k, v in __import__("os").environ.items() if not k.startswith(("OMPI_", "PMI"))})
    assert out.stdout.strip() == "clean", out.stderr


def test_one_process_is_rank_0_of_1_and_collectives_are_identities():
    assert not dist.is_initialized() and dist.get_rank() == 0 and dist.get_world_size() == 1
    a = np.arange(4.0)
    assert dist.all_reduce(a) is a and a.tolist() == [0, 1, 2, 3]
    assert dist.broadcast(a) is a and dist.broadcast_json({"x": 1}) == {"x": 1}
    assert dist.all_gather_json([1]) == [[1]]
    dist.barrier()
    assert dist.all_reduce(a, op=dist.ReduceOp.MAX) is a
    with pytest.raises(ValueError, match="op must be one of"):
        dist.all_reduce(a, op="mean")
    with pytest.raises(ValueError, match="only backend is 'mpi'"):
        dist.init_process_group("nccl")
    with pytest.raises(TypeError, match="C-contiguous"):
        dist.all_reduce(np.arange(8.0)[::2])


def test_ddp_in_one_process_is_a_pass_through():
    manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=4, n_layer=1, n_head=1, n_embd=8, dropout=0.0))
    ddp = dist.DistributedDataParallel(model)
    assert ddp._buckets == [] and ddp._handles == [] and ddp.module is model
    x = np.arange(8).reshape(2, 4) % 20
    with ddp.no_sync():
        loss = ddp(x, x)[1]
    assert loss.item() == model(x, x)[1].item()
    assert list(ddp.state_dict())[0].startswith("module.")          # torch's key prefix


def _token_data(tmp_path, batch):
    from nanoframe import data as D
    text = "".join(chr(97 + (i * 7) % 26) for i in range(5000))
    tok = D.train_tokenizer("char", [text], show_progress=False)
    D.prepare([D.Document("t", text)], [D.Document("v", text[:900])], tok, tmp_path / "data", show_progress=False)
    return D.TokenData(tmp_path / "data", 8, batch, seed=3)


def test_ranks_split_the_global_batch_that_one_process_draws(tmp_path):
    """Ranks 0 and 1 with batch 3 together see exactly the rows of one process with batch 6,
    draw after draw, and their samplers stay in the same state."""
    one = _token_data(tmp_path, 6)
    ranks = [_token_data(tmp_path, 3).shard(r, 2) for r in range(2)]
    for _ in range(4):
        x, y = one.get_batch()
        parts = [d.get_batch() for d in ranks]
        assert np.array_equal(np.concatenate([p[0] for p in parts]), x)
        assert np.array_equal(np.concatenate([p[1] for p in parts]), y)
    assert ranks[0].state_dict() == ranks[1].state_dict() == one.state_dict()
    val_one, val = one.val_batches(4), [d.val_batches(4) for d in ranks]
    assert len(val_one) == len(val[0]) == len(val[1])
    for (x, _), a, b in zip(val_one, *val):
        assert np.array_equal(np.concatenate([a[0], b[0]]), x)


def test_instruction_val_batches_shard_with_a_short_last_batch():
    x = np.arange(7 * 4).reshape(7, 4)
    y = np.where(x % 3 == 0, IGNORE_INDEX, x)
    data = [InstructionData(x, y, x, y, batch_size=2).shard(r, 2) for r in range(2)]
    a, b = data[0].val_batches(), data[1].val_batches()
    assert [len(v[0]) for v in a] == [2, 2] and [len(v[0]) for v in b] == [2, 1]     # 7 rows: 4 + 3
    assert np.array_equal(np.concatenate([a[0][0], b[0][0], a[1][0], b[1][0]]), x)
    with pytest.raises(ValueError, match="rank must be in"):
        data[0].shard(2, 2)


def _state_dir(tmp_path, **extra):
    manual_seed(1)
    rng = get_rng_state()
    data = {"rng": np.random.default_rng(0).bit_generator.state}
    state = {"step": 3, "model_config": GPTConfig(vocab_size=10, block_size=4, n_layer=1, n_head=1, n_embd=8).to_dict(),
             "rng": rng, "data": data, **extra}
    folder = tmp_path / "ck"
    folder.mkdir(exist_ok=True)
    (folder / "state.json").write_text(json.dumps(state))
    return folder, rng, data


def test_checkpoint_schema_accepts_every_ranks_states(tmp_path):
    folder, rng, data = _state_dir(tmp_path)
    folder, rng, data = _state_dir(tmp_path, world_size=2, rank_states=[{"rng": rng, "data": data}] * 2)
    assert read_state(folder)["world_size"] == 2


@pytest.mark.parametrize("extra, message", [
    ({"world_size": 2}, "without the ranks' states"),
    ({"world_size": 0}, "world_size"),
    ({"world_size": 2, "rank_states": [{}]}, "has 1 entries for world_size 2"),
    ({"world_size": 2, "rank_states": [{"rng": 1, "data": {}}] * 2}, "rank_states\\[0\\]"),
    ({"world_size": 1, "rank_states": ["x"]}, "rank_states\\[0\\] must be an object"),
    ({"world_size": 2, "rank_states": "xx"}, "rank_states"),
])
def test_checkpoint_schema_refuses_damaged_rank_states(tmp_path, extra, message):
    folder, _, _ = _state_dir(tmp_path, **extra)
    with pytest.raises(CheckpointError, match=message):
        read_state(folder)


def test_post_accumulate_grad_hook_runs_once_after_all_contributions():
    """A tied weight (wte = lm_head) gets two contributions; its hook sees the final .grad, once."""
    manual_seed(0)
    model = GPT(GPTConfig(vocab_size=30, block_size=6, n_layer=2, n_head=2, n_embd=8, dropout=0.0))
    named = dict(model.named_parameters())
    calls = []
    handles = [register_post_accumulate_grad_hook(p, lambda t, n=n: calls.append((n, t.grad_array.copy())))
               for n, p in named.items()]
    x = np.arange(12).reshape(2, 6) % 30
    model(x, x)[1].backward()
    assert sorted(n for n, _ in calls) == sorted(named)
    for n, g in calls:
        assert np.array_equal(g, named[n].grad_array), n
    assert calls[0][0] == "transformer.ln_f.weight"          # the last layer's gradient is ready first
    calls.clear()
    model(x, x)[1].backward()                                # accumulates: the hook sees the sum
    assert len(calls) == len(named)
    for h in handles:
        h.remove()
    calls.clear()
    model(x, x)[1].backward()
    assert calls == []
    with pytest.raises(RuntimeError, match="leaf tensors"):
        register_post_accumulate_grad_hook(model(x, x)[1], lambda t: None)


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=10)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(world=json_values | st.integers(0, 4), ranks=json_values, entry=json_values)
def test_malformed_rank_states_fail_with_one_checkpoint_error(tmp_path, world, ranks, entry):
    """Whatever a damaged state.json holds in world_size / rank_states, reading it either works or
    raises CheckpointError (never another exception)."""
    folder, rng, data = _state_dir(tmp_path)
    state = json.loads((folder / "state.json").read_text())
    state["world_size"] = world
    state["rank_states"] = ranks if not isinstance(ranks, list) else [entry if i % 2 else {"rng": rng, "data": data}
                                                                      for i in range(len(ranks))]
    (folder / "state.json").write_text(json.dumps(state, allow_nan=True))
    try:
        read_state(folder)
    except CheckpointError:
        pass
