"""A PyTorch-style training script with `import nanoframe as torch`: DataLoader over a random_split
TensorDataset, SGD + StepLR, clip_grad_norm_, then torch.save(model) / torch.load and resuming
from a checkpoint dict. It must learn and come back identical."""
import io

import numpy as np

import nanoframe as torch
import nanoframe.nn as nn
import nanoframe.nn.functional as F
from nanoframe.optim.lr_scheduler import StepLR
from nanoframe.utils.data import DataLoader, TensorDataset, random_split


def _blobs(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[2.0, 0.0], [-2.0, 1.0], [0.0, -2.5]])
    x = centers[y] + rng.standard_normal((n, 2)) * 0.6
    return torch.tensor(x.astype(np.float32)), torch.tensor(y)


def _accuracy(model, loader):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += int((model(x).argmax(-1) == y).sum().item())
            total += len(y)
    model.train()
    return correct / total


def test_pytorch_style_script_trains_saves_and_resumes():
    torch.manual_seed(0)
    train_set, test_set = random_split(TensorDataset(*_blobs()), [0.8, 0.2], generator=np.random.default_rng(0))
    train_loader = DataLoader(train_set, batch_size=16, shuffle=True, generator=np.random.default_rng(1))
    test_loader = DataLoader(test_set, batch_size=64)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = StepLR(optimizer, step_size=3, gamma=0.5)
    for epoch in range(6):
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), max_norm=5.0)
            optimizer.step()
        scheduler.step()
    assert scheduler.get_last_lr() == [0.025]
    assert _accuracy(model, test_loader) > 0.9

    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    restored = torch.load(buf, map_location="cpu", weights_only=False)
    x, _ = next(iter(test_loader))
    np.testing.assert_array_equal(restored(x).detach().numpy(), model(x).detach().numpy())

    ckpt = io.BytesIO()
    torch.save({"epoch": 6, "model_state_dict": model.state_dict(), "optimizer_state_dict": optimizer.state_dict(),
                "scheduler": scheduler.state_dict()}, ckpt)
    ckpt.seek(0)
    checkpoint = torch.load(ckpt, weights_only=True)
    model2 = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 3))
    optimizer2 = torch.optim.SGD(model2.parameters(), lr=0.1, momentum=0.9)
    scheduler2 = StepLR(optimizer2, step_size=3, gamma=0.5)
    model2.load_state_dict(checkpoint["model_state_dict"])
    optimizer2.load_state_dict(checkpoint["optimizer_state_dict"])
    scheduler2.load_state_dict(checkpoint["scheduler"])
    assert checkpoint["epoch"] == 6 and optimizer2.param_groups[0]["lr"] == 0.025
    for model_, opt_ in ((model, optimizer), (model2, optimizer2)):  # one more identical step each
        opt_.zero_grad()
        F.cross_entropy(model_(x), torch.tensor(np.zeros(len(x), np.int64))).backward()
        opt_.step()
    for p, q in zip(model.parameters(), model2.parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
