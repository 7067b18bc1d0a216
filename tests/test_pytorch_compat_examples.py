"""examples/pytorch_compat/: each program runs on nanoframe and its loss falls; with torch installed,
the same program on torch from the same initial weights and the same batches gives the same losses
(float32 tolerance). The examples are imported twice, once per framework, exactly as their
`--torch` flag selects it."""
import contextlib
import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nanoframe

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "pytorch_compat"
NAMES = ["char_gpt", "cnn_classifier", "lstm_lm", "sgd_by_hand", "steplr_save"]


@contextlib.contextmanager
def example(name, backend="nanoframe"):
    """The example module as `python examples/pytorch_compat/<name>.py [--torch]` would import it."""
    path, module_name = EXAMPLES / f"{name}.py", f"compat_example_{name}_{backend}"
    argv = sys.argv
    sys.argv = [str(path)] + (["--torch"] if backend == "torch" else [])
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # pickle (torch.save of a whole model) finds classes here
        spec.loader.exec_module(module)
        sys.argv = argv
        yield module
    finally:
        sys.argv = argv
        sys.modules.pop(module_name, None)


@pytest.fixture
def both():
    """(nanoframe example, torch example) factory; torch on one thread (the machine is small)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with contextlib.ExitStack() as stack:
        yield lambda name: (stack.enter_context(example(name)), stack.enter_context(example(name, "torch")))
    torch.set_num_threads(threads)


def copy_weights(torch_model, nf_model):
    """torch's initial state_dict into the nanoframe model (same architecture, same keys)."""
    nf_model.load_state_dict({k: nanoframe.tensor(v.detach().numpy()) for k, v in torch_model.state_dict().items()})


def assert_same_losses(ours, theirs, rtol=2e-4, atol=2e-5):
    assert len(ours) == len(theirs)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol)


def falls(losses, by):
    head, tail = np.mean(losses[:3]), np.mean(losses[-3:])
    assert tail < head - by, f"loss did not fall by {by}: {head:.4f} -> {tail:.4f}"


def test_each_example_uses_one_switch_and_nothing_of_nanoframe_by_name():
    for name in NAMES:
        source = (EXAMPLES / f"{name}.py").read_text()
        imports = [line.strip() for line in source.splitlines() if line.strip().startswith(("import ", "from "))]
        assert imports.count("import torch") == 1 and imports.count("import nanoframe as torch") == 1, name
        assert "nanoframe." not in source.replace("import nanoframe as torch", ""), name


# ---- each example on nanoframe: it runs and learns ----------------------------------------------
def test_char_gpt_learns_and_samples():
    with example("char_gpt") as ex:
        nanoframe.manual_seed(0)
        dataset = ex.CharDataset((EXAMPLES / "char_gpt.py").read_text(), block_size=32)
        loader = nanoframe.utils.data.DataLoader(dataset, batch_size=8, shuffle=True, drop_last=True)
        model = ex.GPT(len(dataset.chars), block_size=32, n_layer=1)
        falls(ex.train(model, loader, steps=40), by=1.0)
        model.eval()
        out = model.generate(dataset.data[:1].view(1, 1), 20, temperature=0.8, top_k=5)
        assert out.shape == (1, 21) and set(dataset.decode(out[0].tolist())) <= set(dataset.chars)


def test_cnn_classifier_learns():
    with example("cnn_classifier") as ex:
        nanoframe.manual_seed(0)
        x, y = ex.make_shapes(512)
        loader = nanoframe.utils.data.DataLoader(nanoframe.utils.data.TensorDataset(x, y), batch_size=32,
                                                 shuffle=True)
        model = ex.Net()
        optimizer = nanoframe.optim.Adam(model.parameters(), lr=1e-2)
        epochs = [ex.train_epoch(model, loader, optimizer, nanoframe.nn.CrossEntropyLoss()) for _ in range(4)]
        assert np.mean(epochs[-1]) < np.mean(epochs[0]) - 0.3
        assert ex.evaluate(model, loader) > 0.5  # 4 classes: chance is 0.25


def test_lstm_language_model_learns():
    with example("lstm_lm") as ex:
        nanoframe.manual_seed(0)
        text = (EXAMPLES / "lstm_lm.py").read_text()[:3000]
        chars = sorted(set(text))
        data = ex.batchify(nanoframe.tensor([chars.index(c) for c in text]), 4)
        model = ex.LSTMLanguageModel(len(chars), hidden=32)
        falls(ex.train(model, data, bptt=16, steps=40), by=0.8)
        assert ex.perplexity(model, data, 16) < len(chars) / 2


def test_sgd_by_hand_updates_the_parameters_in_place():
    with example("sgd_by_hand") as ex:
        nanoframe.manual_seed(0)
        x, y = ex.sine_data()
        coefficients = [nanoframe.randn((), requires_grad=True) for _ in range(4)]
        losses = ex.fit_polynomial(x, y, coefficients, steps=2000)
        assert losses[-1] < 0.01 * losses[0] and all(c.grad is None and c.is_leaf for c in coefficients)
        assert abs(coefficients[1].item() - 0.85) < 0.1  # sin x ~ 0.85 x - 0.09 x^3 on [-pi, pi]
        model = ex.polynomial_module()
        losses = ex.fit_module(model, x, y, steps=500)
        assert losses[-1] < 0.05 * losses[0]


def test_steplr_save_round_trips_the_whole_model(tmp_path):
    with example("steplr_save") as ex:
        nanoframe.manual_seed(0)
        x, y = ex.make_data(128)
        loader = nanoframe.utils.data.DataLoader(nanoframe.utils.data.TensorDataset(x, y), batch_size=32)
        model = ex.Regressor()
        history = ex.train(model, loader, 4, *ex.make_run(model))
        assert [lr for _, lr in history] == [0.05, 0.05, 0.05, 0.025] and history[-1][0] < history[0][0]
        ex.torch.save(model, tmp_path / "model.pt")
        with pytest.raises(nanoframe.errors.CheckpointError, match="Regressor' is not allowed"):
            ex.torch.load(tmp_path / "model.pt")
        with ex.torch.serialization.safe_globals(ex.SAFE_GLOBALS):
            restored = ex.torch.load(tmp_path / "model.pt")
        assert type(restored) is ex.Regressor
        np.testing.assert_array_equal(restored(x).detach().numpy(), model(x).detach().numpy())


@pytest.mark.parametrize("name,args", [("char_gpt", ["--steps", "12"]), ("cnn_classifier", ["--epochs", "1"]),
                                       ("lstm_lm", ["--steps", "8"]), ("sgd_by_hand", ["--steps", "50"]),
                                       ("steplr_save", ["--epochs", "2"])])
def test_the_programs_run_from_the_command_line(name, args):
    env = {"PYTHONPATH": str(EXAMPLES.parents[1]), "PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "nanoframe" in result.stdout and "Traceback" not in result.stderr


# ---- the same programs on torch from the same initial weights: the same losses -------------------
@needs_torch
def test_char_gpt_matches_torch(both):
    ours, theirs = both("char_gpt")
    torch.manual_seed(0)
    text = (EXAMPLES / "char_gpt.py").read_text()
    t_data, n_data = theirs.CharDataset(text, 32), ours.CharDataset(text, 32)
    t_model = theirs.GPT(len(t_data.chars), block_size=32, n_layer=1)
    n_model = ours.GPT(len(n_data.chars), block_size=32, n_layer=1)
    copy_weights(t_model, n_model)
    t_loader = torch.utils.data.DataLoader(t_data, batch_size=8, drop_last=True)  # no shuffle: same batches
    n_loader = nanoframe.utils.data.DataLoader(n_data, batch_size=8, drop_last=True)
    assert_same_losses(ours.train(n_model, n_loader, steps=15), theirs.train(t_model, t_loader, steps=15))


@needs_torch
def test_cnn_classifier_matches_torch(both):
    ours, theirs = both("cnn_classifier")
    torch.manual_seed(0)
    t_model, n_model = theirs.Net(), ours.Net()
    copy_weights(t_model, n_model)
    losses = []
    for ex, model in ((theirs, t_model), (ours, n_model)):
        fw = ex.torch
        loader = fw.utils.data.DataLoader(fw.utils.data.TensorDataset(*ex.make_shapes(192)), batch_size=32)
        optimizer = fw.optim.Adam(model.parameters(), lr=1e-2)
        losses.append(sum((ex.train_epoch(model, loader, optimizer, fw.nn.CrossEntropyLoss()) for _ in range(2)), []))
    assert_same_losses(losses[1], losses[0])


@needs_torch
def test_lstm_language_model_matches_torch(both):
    ours, theirs = both("lstm_lm")
    torch.manual_seed(0)
    text = (EXAMPLES / "lstm_lm.py").read_text()[:2000]
    chars = sorted(set(text))
    ids = [chars.index(c) for c in text]
    t_model, n_model = theirs.LSTMLanguageModel(len(chars), hidden=32), ours.LSTMLanguageModel(len(chars), hidden=32)
    copy_weights(t_model, n_model)
    t_losses = theirs.train(t_model, theirs.batchify(torch.tensor(ids), 4), bptt=16, steps=12)
    n_losses = ours.train(n_model, ours.batchify(nanoframe.tensor(ids), 4), bptt=16, steps=12)
    assert_same_losses(n_losses, t_losses)


@needs_torch
def test_sgd_by_hand_matches_torch(both):
    ours, theirs = both("sgd_by_hand")
    torch.manual_seed(0)
    t_coefficients = [torch.randn((), requires_grad=True) for _ in range(4)]
    n_coefficients = [nanoframe.tensor(c.item(), requires_grad=True) for c in t_coefficients]
    t_losses = theirs.fit_polynomial(*theirs.sine_data(), t_coefficients, steps=300)
    n_losses = ours.fit_polynomial(*ours.sine_data(), n_coefficients, steps=300)
    assert_same_losses(n_losses, t_losses)
    np.testing.assert_allclose([c.item() for c in n_coefficients], [c.item() for c in t_coefficients], rtol=1e-4,
                               atol=1e-6)
    t_model, n_model = theirs.polynomial_module(), ours.polynomial_module()
    copy_weights(t_model, n_model)
    assert_same_losses(ours.fit_module(n_model, *ours.sine_data(), steps=300),
                       theirs.fit_module(t_model, *theirs.sine_data(), steps=300))


@needs_torch
def test_steplr_save_matches_torch(both):
    ours, theirs = both("steplr_save")
    torch.manual_seed(0)
    t_model, n_model = theirs.Regressor(), ours.Regressor()
    copy_weights(t_model, n_model)
    histories = []
    for ex, model in ((theirs, t_model), (ours, n_model)):
        loader = ex.torch.utils.data.DataLoader(ex.torch.utils.data.TensorDataset(*ex.make_data(128)), batch_size=32)
        histories.append(ex.train(model, loader, 7, *ex.make_run(model)))
    assert [lr for _, lr in histories[1]] == pytest.approx([lr for _, lr in histories[0]], rel=1e-12)
    assert_same_losses([loss for loss, _ in histories[1]], [loss for loss, _ in histories[0]])
    assert math.isclose(histories[1][-1][1], 0.0125)
