"""Forward + backward time of each fused op in nanoframe.functional next to PyTorch's (CPU).

GPT-sized shapes: B=8, T=256, C=384, nh=6, hs=64, V=4096, float32 (Llama-style rows: 2 K/V heads,
SwiGLU hidden 1024); the conv, pooling and batch
norm rows use a CIFAR-sized ResNet block (N=32, C=64, 32x32), the recurrent rows a char-RNN
(T=128, B=32, input = hidden = 256). Each entry is the median of several repeats of one forward
and one backward (upstream gradient of ones / a fixed array); the recurrent rows include the
gradients of all the layer's weights.
ratio = torch_time / nanoframe_time, so > 1 means nanoframe is faster. Runs without torch (the
reference column then shows "-").

    python benchmarks/bench_ops.py [--repeats 7] [--markdown] [--only conv,LSTM]
"""
import argparse
import time

import numpy as np

import nanoframe as nf
import nanoframe.functional as F

B, T, C, NH, V = 8, 256, 384, 6, 4096
HS = C // NH
NKV, LH = 2, 1024                  # Llama-style rows: K/V heads, SwiGLU hidden size
CN, CC, CH = 32, 64, 32            # conv rows: batch, channels, height = width
RT, RB, RH = 128, 32, 256          # recurrent rows: time steps, batch, input = hidden size


def _median_time(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def cases():
    """(name, shapes note, make_inputs(rng) -> list of arrays, grad_idx, nanoframe fn, torch fn builder)."""
    return [
        ("linear", f"x ({B},{T},{C}) W ({4 * C},{C}) b", lambda r: [r((B, T, C)), r((4 * C, C)), r((4 * C,))], (0, 1, 2),
         F.linear, lambda tF: tF.linear),
        ("embedding", f"idx ({B},{T}) W ({V},{C})", lambda r: [_ids((B, T)), r((V, C))], (1,),
         F.embedding, lambda tF: (lambda i, w: tF.embedding(i, w))),
        ("layer_norm", f"x ({B},{T},{C})", lambda r: [r((B, T, C)), r((C,)), r((C,))], (0, 1, 2),
         lambda x, w, b: F.layer_norm(x, (C,), w, b), lambda tF: (lambda x, w, b: tF.layer_norm(x, (C,), w, b))),
        ("rms_norm", f"x ({B},{T},{C})", lambda r: [r((B, T, C)), r((C,))], (0, 1),
         lambda x, w: F.rms_norm(x, (C,), w), lambda tF: (lambda x, w: tF.rms_norm(x, (C,), w))),
        ("gelu (erf)", f"x ({B},{T},{4 * C})", lambda r: [r((B, T, 4 * C))], (0,),
         F.gelu, lambda tF: tF.gelu),
        ("gelu (tanh)", f"x ({B},{T},{4 * C})", lambda r: [r((B, T, 4 * C))], (0,),
         lambda x: F.gelu(x, approximate="tanh"), lambda tF: (lambda x: tF.gelu(x, approximate="tanh"))),
        ("silu", f"x ({B},{T},{4 * C})", lambda r: [r((B, T, 4 * C))], (0,), F.silu, lambda tF: tF.silu),
        ("softmax", f"x ({B},{NH},{T},{T})", lambda r: [r((B, NH, T, T))], (0,),
         F.softmax, lambda tF: (lambda x: tF.softmax(x, dim=-1))),
        ("log_softmax", f"x ({B * T},{V})", lambda r: [r((B * T, V))], (0,),
         F.log_softmax, lambda tF: (lambda x: tF.log_softmax(x, dim=-1))),
        ("cross_entropy", f"logits ({B * T},{V})", lambda r: [r((B * T, V)), _ids((B * T,))], (0,),
         F.cross_entropy, lambda tF: tF.cross_entropy),
        ("nll_loss", f"logp ({B * T},{V})", lambda r: [r((B * T, V)), _ids((B * T,))], (0,),
         F.nll_loss, lambda tF: tF.nll_loss),
        ("mse_loss", f"x ({B},{T},{C})", lambda r: [r((B, T, C)), r((B, T, C))], (0,),
         F.mse_loss, lambda tF: tF.mse_loss),
        ("bce_with_logits", f"x ({B},{T},{C})", lambda r: [r((B, T, C)), _unit((B, T, C))], (0,),
         F.binary_cross_entropy_with_logits, lambda tF: tF.binary_cross_entropy_with_logits),
        ("dropout p=0.1", f"x ({B},{T},{4 * C})", lambda r: [r((B, T, 4 * C))], (0,),
         lambda x: F.dropout(x, 0.1), lambda tF: (lambda x: tF.dropout(x, 0.1))),
        ("causal_self_attention", f"qkv ({B},{T},{3 * C}) nh={NH}", lambda r: [r((B, T, 3 * C))], (0,),
         lambda qkv: F.causal_self_attention(qkv, NH), lambda tF: _torch_packed_attention(tF)),
        ("conv2d 3x3 pad 1", f"x ({CN},{CC},{CH},{CH}) W ({CC},{CC},3,3) b", lambda r: [r((CN, CC, CH, CH)), r((CC, CC, 3, 3)), r((CC,))],
         (0, 1, 2), lambda x, w, b: F.conv2d(x, w, b, padding=1), lambda tF: (lambda x, w, b: tF.conv2d(x, w, b, padding=1))),
        ("conv2d 3->64 stride 2", f"x ({CN},3,{CH},{CH}) W ({CC},3,5,5)", lambda r: [r((CN, 3, CH, CH)), r((CC, 3, 5, 5))],
         (0, 1), lambda x, w: F.conv2d(x, w, stride=2, padding=2), lambda tF: (lambda x, w: tF.conv2d(x, w, stride=2, padding=2))),
        ("conv1d k=5", f"x ({CN},{CC},{CH * CH // 4}) W ({CC},{CC},5)", lambda r: [r((CN, CC, CH * CH // 4)), r((CC, CC, 5))],
         (0, 1), lambda x, w: F.conv1d(x, w, padding=2), lambda tF: (lambda x, w: tF.conv1d(x, w, padding=2))),
        ("max_pool2d 2x2", f"x ({CN},{CC},{CH},{CH})", lambda r: [r((CN, CC, CH, CH))], (0,),
         lambda x: F.max_pool2d(x, 2), lambda tF: (lambda x: tF.max_pool2d(x, 2))),
        ("batch_norm (train)", f"x ({CN},{CC},{CH},{CH})", lambda r: [r((CN, CC, CH, CH)), r((CC,)), r((CC,))], (0, 1, 2),
         lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
         lambda tF: (lambda x, w, b: tF.batch_norm(x, None, None, w, b, training=True))),
        ("LSTM layer", f"x ({RT},{RB},{RH}) H={RH}", lambda r: [r((RT, RB, RH))], (0,),
         _recurrent("LSTM"), lambda tF: _recurrent("LSTM", torch_module=True)),
        ("GRU layer", f"x ({RT},{RB},{RH}) H={RH}", lambda r: [r((RT, RB, RH))], (0,),
         _recurrent("GRU"), lambda tF: _recurrent("GRU", torch_module=True)),
        ("swiglu", f"gate, up ({B},{T},{LH})", lambda r: [r((B, T, LH)), r((B, T, LH))], (0, 1),
         F.swiglu, lambda tF: (lambda g, u: tF.silu(g) * u)),
        ("attention GQA+rope (fused)", f"q ({B},{T},{C}) k,v ({B},{T},{NKV * HS}) nh={NH} nkv={NKV}", _gqa_inputs,
         (0, 1, 2), lambda q, k, v: F.causal_attention(q, k, v, n_head=NH, rope_theta=1e4), _torch_gqa_rope),
        ("rope op, then attention GQA", f"q ({B},{T},{C}) k,v ({B},{T},{NKV * HS}) nh={NH} nkv={NKV}", _gqa_inputs,
         (0, 1, 2), _rope_then_attention, _torch_gqa_rope),
        ("sdpa causal", f"q,k,v ({B},{NH},{T},{HS})", lambda r: [r((B, NH, T, HS)), r((B, NH, T, HS)), r((B, NH, T, HS))],
         (0, 1, 2), lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
         lambda tF: (lambda q, k, v: tF.scaled_dot_product_attention(q, k, v, is_causal=True))),
    ]


def _recurrent(kind, torch_module=False):
    """x -> output of a one-layer LSTM / GRU (its weights get gradients too)."""
    if torch_module:
        import torch
        layer = getattr(torch.nn, kind)(RH, RH)
    else:
        layer = getattr(nf.nn, kind)(RH, RH)
    return lambda x: layer(x)[0]


def _torch_packed_attention(tF):
    """torch's twin of F.causal_self_attention: split (B, T, 3C), view heads, causal SDPA, merge."""

    def fn(qkv):
        q, k, v = qkv.split(C, dim=2)
        q, k, v = (t.view(B, T, NH, HS).transpose(1, 2) for t in (q, k, v))
        return tF.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)

    return fn


def _gqa_inputs(r):
    return [r((B, T, C)), r((B, T, NKV * HS)), r((B, T, NKV * HS))]


def _rope_then_attention(q, k, v):
    """RoPE as its own op on the (B, heads, T, hs) views, then the fused attention without it: the
    alternative to rotating inside the attention (ops/rope.py says which measured faster)."""
    def rot(x, n):
        x4 = F.rope(x.reshape(B, T, n, HS).transpose(1, 2), theta=1e4)
        return x4.transpose(1, 2).reshape(B, T, n * HS)

    return F.causal_attention(rot(q, NH), rot(k, NKV), v, n_head=NH)


def _torch_gqa_rope(tF):
    """torch's twin: view heads, rotate q and k as transformers' Llama does, SDPA with enable_gqa, merge."""
    import torch

    inv = 1.0 / (1e4 ** (torch.arange(0, HS, 2, dtype=torch.float) / HS))
    ang = torch.arange(T, dtype=torch.float)[:, None] * inv[None, :]
    cos, sin = torch.cat((ang, ang), -1).cos(), torch.cat((ang, ang), -1).sin()

    def rot(x):
        return x * cos + torch.cat((-x[..., HS // 2:], x[..., : HS // 2]), -1) * sin

    def fn(q, k, v):
        q, k, v = (t.view(B, T, -1, HS).transpose(1, 2) for t in (q, k, v))
        y = tF.scaled_dot_product_attention(rot(q), rot(k), v, is_causal=True, enable_gqa=True)
        return y.transpose(1, 2).reshape(B, T, C)

    return fn


def _ids(shape):
    return np.random.default_rng(1).integers(0, V, shape)


def _unit(shape):
    return np.random.default_rng(2).random(shape, dtype=np.float32)


def bench_nanoframe(make, grad_idx, fn, repeats):
    rng = np.random.default_rng(0)
    arrays = make(lambda s: rng.standard_normal(s, dtype=np.float32))
    ts = [nf.Tensor(a, requires_grad=i in grad_idx) if a.dtype.kind == "f" else a for i, a in enumerate(arrays)]
    out = fn(*ts)
    gy = np.ones(out.shape, out.dtype)

    def step():
        for i in grad_idx:
            ts[i].grad_array = None
        fn(*ts).backward(gradient=gy)

    return _median_time(step, repeats)


def bench_torch(torch, make, grad_idx, fn, repeats):
    rng = np.random.default_rng(0)
    arrays = make(lambda s: rng.standard_normal(s, dtype=np.float32))
    ts = [torch.from_numpy(a).requires_grad_(i in grad_idx) if a.dtype.kind == "f" else torch.from_numpy(a)
          for i, a in enumerate(arrays)]
    gy = torch.ones_like(fn(*ts))

    def step():
        for i in grad_idx:
            ts[i].grad = None
        fn(*ts).backward(gy)

    return _median_time(step, repeats)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--markdown", action="store_true", help="print only the markdown table")
    ap.add_argument("--only", default="", help="comma-separated substrings: run only the ops whose name has one")
    args = ap.parse_args(argv)
    wanted = [w for w in args.only.split(",") if w]
    selected = [c for c in cases() if not wanted or any(w in c[0] for w in wanted)]
    try:
        import torch
        import torch.nn.functional as tF
    except ImportError:
        torch = tF = None
    if not args.markdown:
        ref = f"torch {torch.__version__}, {torch.get_num_threads()} threads" if torch else "torch not installed"
        print(f"nanoframe fused ops, forward+backward, float32, median of {args.repeats}; numpy {np.__version__}; {ref}\n")
    # Two phases (all nanoframe ops, then all torch ops): OpenBLAS and OpenMP worker threads
    # spin-wait after their work, so interleaving the two libraries slows down both.
    table = [(name, shapes, bench_nanoframe(make, grad_idx, fn, args.repeats))
             for name, shapes, make, grad_idx, fn, _ in selected]
    refs = [bench_torch(torch, make, grad_idx, tfn(tF), args.repeats) if torch is not None else None
            for _, _, make, grad_idx, _, tfn in selected]
    rows = ["| op | shapes | nanoframe ms | torch ms | ratio (torch/nanoframe) |", "|---|---|---:|---:|---:|"]
    for (name, shapes, t_nf), t_ref in zip(table, refs):
        ref, ratio = ("-", "-") if t_ref is None else (f"{t_ref * 1e3:.2f}", f"{t_ref / t_nf:.2f}")
        rows.append(f"| {name} | {shapes} | {t_nf * 1e3:.2f} | {ref} | {ratio} |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
