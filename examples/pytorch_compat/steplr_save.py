"""A training run with a StepLR schedule that saves the whole model with torch.save(model, path),
loads it back (allow-listing its classes with serialization.safe_globals, as pytorch/examples'
word_language_model does), and resumes from a checkpoint dict of model, optimizer and scheduler.

    python examples/pytorch_compat/steplr_save.py            # on nanoframe
    python examples/pytorch_compat/steplr_save.py --torch    # the same program on PyTorch

The task: regress y = sin(3 x1) + x2^2 on 2-D points (made with NumPy, so both frameworks see the
same data).
"""
import argparse
import os
import sys
import tempfile

import numpy as np

if "--torch" in sys.argv:  # the only difference between the two runs: which framework is `torch`
    import torch
else:
    import nanoframe as torch

nn = torch.nn
TensorDataset, DataLoader = torch.utils.data.TensorDataset, torch.utils.data.DataLoader


def make_data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    y = (np.sin(3 * x[:, :1]) + x[:, 1:] ** 2).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(y)


class Regressor(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                 nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x)


SAFE_GLOBALS = [Regressor, nn.modules.container.Sequential, nn.modules.linear.Linear, nn.modules.activation.Tanh]


def train(model, loader, epochs, optimizer, scheduler):
    """Returns the mean loss of each epoch and the learning rate it ran with."""
    criterion = nn.MSELoss()
    history = []
    for _ in range(epochs):
        model.train()
        total = 0.0
        for x, y in loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * x.size(0)
        history.append((total / len(loader.dataset), scheduler.get_last_lr()[0]))
        scheduler.step()
    return history


def make_run(model, lr=0.05):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch", action="store_true", help="run on PyTorch instead of nanoframe")
    parser.add_argument("--epochs", type=int, default=9)
    args = parser.parse_args()
    torch.manual_seed(0)
    x, y = make_data()
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    model = Regressor()
    optimizer, scheduler = make_run(model)
    for epoch, (loss, lr) in enumerate(train(model, loader, args.epochs, optimizer, scheduler)):
        print(f"{torch.__name__} epoch {epoch}: lr {lr:.4f}  mse {loss:.5f}")

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.pt")
        torch.save(model, path)                                   # the whole module
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            restored = torch.load(path)
        with torch.no_grad():
            same = torch.equal(restored(x), model(x))
        print(f"reloaded whole model: {type(restored).__name__}, same predictions: {same}")

        checkpoint = os.path.join(folder, "checkpoint.pt")
        torch.save({"epoch": args.epochs, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict()}, checkpoint)
        state = torch.load(checkpoint)
        resumed = Regressor()
        resumed.load_state_dict(state["model"])
        optimizer, scheduler = make_run(resumed)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        loss, lr = train(resumed, loader, 1, optimizer, scheduler)[0]
        print(f"resumed at epoch {state['epoch']} with lr {lr:.4f}: mse {loss:.5f}")


if __name__ == "__main__":
    main()
