"""Gradient descent by hand, as PyTorch's "Learning PyTorch with Examples" teaches it: tensors with
requires_grad, loss.backward(), then `a -= learning_rate * a.grad` under torch.no_grad() and the
gradients reset; and the same for an nn.Module's parameters (`p -= lr * p.grad`, zero_grad()).
The in-place update must change the parameter itself: a framework that rebinds `a` to a new
tensor here would run without an error and never learn.

    python examples/pytorch_compat/sgd_by_hand.py            # on nanoframe
    python examples/pytorch_compat/sgd_by_hand.py --torch    # the same program on PyTorch
"""
import argparse
import math
import sys

if "--torch" in sys.argv:  # the only difference between the two runs: which framework is `torch`
    import torch
else:
    import nanoframe as torch

nn = torch.nn


def sine_data(n=2000):
    x = torch.linspace(-math.pi, math.pi, n)
    return x, torch.sin(x)


def fit_polynomial(x, y, coefficients, steps=2000, learning_rate=1e-6):
    """y = a + b x + c x^2 + d x^3 fitted by hand-written gradient descent; returns the losses."""
    a, b, c, d = coefficients
    losses = []
    for _ in range(steps):
        y_pred = a + b * x + c * x ** 2 + d * x ** 3
        loss = (y_pred - y).pow(2).sum()
        losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            a -= learning_rate * a.grad
            b -= learning_rate * b.grad
            c -= learning_rate * c.grad
            d -= learning_rate * d.grad
            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None
    return losses


def polynomial_module():
    """The same fit as a module: Linear over the features (x, x^2, x^3)."""
    return nn.Sequential(nn.Linear(3, 1), nn.Flatten(0, 1))


def fit_module(model, x, y, steps=2000, learning_rate=1e-6):
    features = x.unsqueeze(-1).pow(torch.tensor([1, 2, 3]))
    loss_fn = nn.MSELoss(reduction="sum")
    losses = []
    for _ in range(steps):
        loss = loss_fn(model(features), y)
        losses.append(loss.item())
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for param in model.parameters():
                param -= learning_rate * param.grad
    return losses


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch", action="store_true", help="run on PyTorch instead of nanoframe")
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    torch.manual_seed(0)
    x, y = sine_data()
    coefficients = [torch.randn((), requires_grad=True) for _ in range(4)]
    losses = fit_polynomial(x, y, coefficients, args.steps)
    a, b, c, d = (t.item() for t in coefficients)
    print(f"{torch.__name__} tensors: loss {losses[0]:.1f} -> {losses[-1]:.1f}; "
          f"y = {a:.3f} + {b:.3f} x + {c:.3f} x^2 + {d:.3f} x^3")
    model = polynomial_module()
    losses = fit_module(model, x, y, args.steps)
    linear = model[0]
    print(f"{torch.__name__} module:  loss {losses[0]:.1f} -> {losses[-1]:.1f}; y = {linear.bias.item():.3f} + "
          + " + ".join(f"{w:.3f} x^{i + 1}" for i, w in enumerate(linear.weight[0].tolist())))


if __name__ == "__main__":
    main()
