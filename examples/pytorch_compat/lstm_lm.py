"""An LSTM language model over characters, written the way a PyTorch user writes one: the text
batchified into columns, truncated backpropagation through time with the hidden state detached
between chunks, nn.Embedding -> nn.LSTM(num_layers=2, batch_first=True) -> nn.Linear, clipping,
Adam, and a perplexity evaluation.

    python examples/pytorch_compat/lstm_lm.py            # on nanoframe
    python examples/pytorch_compat/lstm_lm.py --torch    # the same program on PyTorch

Without --data it learns this file's own source text.
"""
import argparse
import math
import sys

if "--torch" in sys.argv:  # the only difference between the two runs: which framework is `torch`
    import torch
else:
    import nanoframe as torch

nn, F = torch.nn, torch.nn.functional


def batchify(ids, batch_size):
    """(N,) ids -> (batch_size, N // batch_size): each row a contiguous stretch of the text."""
    n = ids.size(0) // batch_size
    return ids[: n * batch_size].view(batch_size, n)


class LSTMLanguageModel(nn.Module):
    def __init__(self, vocab_size, emb=32, hidden=64, layers=2, dropout=0.0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb)
        self.lstm = nn.LSTM(emb, hidden, num_layers=layers, batch_first=True, dropout=dropout)
        self.out = nn.Linear(hidden, vocab_size)

    def forward(self, x, state=None):
        h, state = self.lstm(self.embed(x), state)
        return self.out(h), state


def detach(state):
    return tuple(s.detach() for s in state)


def train(model, data, bptt, steps, lr=1e-2, clip=1.0):
    """`steps` chunks of bptt characters (wrapping around); returns the loss of every chunk."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    state, losses, i = None, [], 0
    for _ in range(steps):
        if i + bptt + 1 > data.size(1):
            state, i = None, 0
        x, y = data[:, i:i + bptt], data[:, i + 1:i + 1 + bptt]
        if state is not None:
            state = detach(state)  # carry the state over, but not its history
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        losses.append(loss.item())
        i += bptt
    return losses


def perplexity(model, data, bptt):
    model.eval()
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        for i in range(0, data.size(1) - 1, bptt):
            x, y = data[:, i:i + bptt], data[:, i + 1:i + 1 + bptt]
            x = x[:, : y.size(1)]
            logits, state = model(x, state)
            total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum").item()
            count += y.numel()
    return math.exp(total / count)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch", action="store_true", help="run on PyTorch instead of nanoframe")
    parser.add_argument("--data", default=__file__, help="a text file (default: this file)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    with open(args.data, encoding="utf-8") as f:
        text = f.read()
    chars = sorted(set(text))
    ids = torch.tensor([chars.index(c) for c in text], dtype=torch.long)
    split = int(0.9 * len(ids))
    train_data, val_data = batchify(ids[:split], 8), batchify(ids[split:], 2)
    model = LSTMLanguageModel(len(chars))
    before = perplexity(model, val_data, 32)
    print(f"{torch.__name__}: vocabulary {len(chars)}, validation perplexity before {before:.1f}")
    losses = train(model, train_data, bptt=32, steps=args.steps)
    print(f"loss {losses[0]:.3f} -> {sum(losses[-10:]) / 10:.3f}; "
          f"validation perplexity after {perplexity(model, val_data, 32):.1f}")


if __name__ == "__main__":
    main()
