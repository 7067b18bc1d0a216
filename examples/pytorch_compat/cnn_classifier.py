"""A small CNN classifier, written the way a PyTorch user writes one: a TensorDataset split with
random_split, DataLoaders, Conv2d + BatchNorm2d + MaxPool2d + AdaptiveAvgPool2d, CrossEntropyLoss,
Adam, and an evaluation loop under model.eval() and torch.no_grad().

    python examples/pytorch_compat/cnn_classifier.py            # on nanoframe
    python examples/pytorch_compat/cnn_classifier.py --torch    # the same program on PyTorch

The data are 16x16 images of a horizontal bar, a vertical bar, a diagonal or a cross, at random
places, under noise (made with NumPy, so both frameworks see the same images).
"""
import argparse
import sys

import numpy as np

if "--torch" in sys.argv:  # the only difference between the two runs: which framework is `torch`
    import torch
else:
    import nanoframe as torch

nn = torch.nn
TensorDataset, DataLoader, random_split = torch.utils.data.TensorDataset, torch.utils.data.DataLoader, \
    torch.utils.data.random_split

CLASSES = ["horizontal", "vertical", "diagonal", "cross"]


def make_shapes(n, size=16, noise=0.3, seed=0):
    """(n, 1, size, size) float32 images and (n,) int64 labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), n)
    images = noise * rng.standard_normal((n, 1, size, size)).astype(np.float32)
    for img, label, (r, c) in zip(images, labels, rng.integers(3, size - 3, (n, 2))):
        if label in (0, 3):
            img[0, r, c - 3:c + 4] += 1.0
        if label in (1, 3):
            img[0, r - 3:r + 4, c] += 1.0
        if label == 2:
            for d in range(-3, 4):
                img[0, r + d, c + d] += 1.0
    return torch.from_numpy(images), torch.from_numpy(labels)


class Net(nn.Module):
    def __init__(self, num_classes=len(CLASSES)):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, kernel_size=3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def train_epoch(model, loader, optimizer, criterion):
    """One pass over the loader; returns the loss of every batch."""
    model.train()
    losses = []
    for images, labels in loader:
        optimizer.zero_grad()
        loss = criterion(model(images), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def evaluate(model, loader):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            correct += (model(images).argmax(dim=1) == labels).sum().item()
            total += labels.size(0)
    return correct / total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch", action="store_true", help="run on PyTorch instead of nanoframe")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    train_set, test_set = random_split(TensorDataset(*make_shapes(1200)), [1000, 200])
    train_loader = DataLoader(train_set, batch_size=32, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=100)
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(1, args.epochs + 1):
        losses = train_epoch(model, train_loader, optimizer, criterion)
        print(f"{torch.__name__} epoch {epoch}: mean loss {sum(losses) / len(losses):.4f}, "
              f"test accuracy {evaluate(model, test_loader):.1%}")


if __name__ == "__main__":
    main()
