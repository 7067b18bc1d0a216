"""A nanoGPT-style GPT in PyTorch with nanoframe's parameter names: the reference the training and
generation benchmarks compare against (same shapes, same optimizer). Needs the `parity` extra."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, nh, bias=True):
        super().__init__()
        self.nh = nh
        self.ln_1 = nn.LayerNorm(C, bias=bias)
        self.attn = nn.Module()
        self.attn.c_attn = nn.Linear(C, 3 * C, bias=bias)
        self.attn.c_proj = nn.Linear(C, C, bias=bias)
        self.ln_2 = nn.LayerNorm(C, bias=bias)
        self.mlp = nn.Module()
        self.mlp.c_fc = nn.Linear(C, 4 * C, bias=bias)
        self.mlp.c_proj = nn.Linear(4 * C, C, bias=bias)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.attn.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.nh, C // self.nh).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn.c_proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x)), approximate="tanh"))


class TorchGPT(nn.Module):
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, bias=True):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab_size, n_embd),
            wpe=nn.Embedding(block_size, n_embd),
            h=nn.ModuleList([Block(n_embd, n_head, bias) for _ in range(n_layer)]),
            ln_f=nn.LayerNorm(n_embd, bias=bias),
        ))
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("c_proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx, targets=None):
        T = idx.shape[1]
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(T))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = None if targets is None else F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    def configure_optimizer(self, weight_decay, lr, betas):
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=lr, betas=betas)


class LlamaBlock(nn.Module):
    """A Llama decoder layer with nanoframe's parameter names: RMSNorm, RoPE on q and k, grouped-query
    attention (SDPA with enable_gqa), SwiGLU MLP, no biases."""

    def __init__(self, C, nh, nkv, H, eps=1e-5):
        super().__init__()
        self.nh, self.nkv, self.hs = nh, nkv, C // nh
        self.ln_1 = nn.RMSNorm(C, eps=eps)
        self.attn = nn.Module()
        self.attn.q_proj = nn.Linear(C, nh * self.hs, bias=False)
        self.attn.k_proj = nn.Linear(C, nkv * self.hs, bias=False)
        self.attn.v_proj = nn.Linear(C, nkv * self.hs, bias=False)
        self.attn.o_proj = nn.Linear(nh * self.hs, C, bias=False)
        self.ln_2 = nn.RMSNorm(C, eps=eps)
        self.mlp = nn.Module()
        self.mlp.gate_proj = nn.Linear(C, H, bias=False)
        self.mlp.up_proj = nn.Linear(C, H, bias=False)
        self.mlp.down_proj = nn.Linear(H, C, bias=False)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        h = self.ln_1(x)
        q, k, v = (p(h).view(B, T, n, self.hs).transpose(1, 2) for p, n in
                   ((self.attn.q_proj, self.nh), (self.attn.k_proj, self.nkv), (self.attn.v_proj, self.nkv)))
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.nkv != self.nh)
        x = x + self.attn.o_proj(y.transpose(1, 2).reshape(B, T, self.nh * self.hs))
        h = self.ln_2(x)
        return x + self.mlp.down_proj(F.silu(self.mlp.gate_proj(h)) * self.mlp.up_proj(h))


def rotate(x, cos, sin):
    """transformers' apply_rotary_pos_emb: x (B, heads, T, hs), cos and sin (T, hs)."""
    h = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., h:], x[..., :h]), dim=-1) * sin


class TorchLlama(nn.Module):
    """The Llama setting of nanoframe's GPT in PyTorch (same names, init and optimizer groups as
    TorchGPT): tied embeddings, no position table, RoPE with base theta."""

    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, n_kv_head, mlp_hidden, theta=10000.0):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab_size, n_embd),
            h=nn.ModuleList([LlamaBlock(n_embd, n_head, n_kv_head, mlp_hidden) for _ in range(n_layer)]),
            ln_f=nn.RMSNorm(n_embd, eps=1e-5),
        ))
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight
        hs = n_embd // n_head
        inv_freq = 1.0 / (theta ** (torch.arange(0, hs, 2, dtype=torch.float) / hs))
        ang = torch.arange(block_size, dtype=torch.float)[:, None] * inv_freq[None, :]
        self.register_buffer("cos", torch.cat((ang, ang), -1).cos(), persistent=False)
        self.register_buffer("sin", torch.cat((ang, ang), -1).sin(), persistent=False)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                resid = name.endswith(("o_proj.weight", "down_proj.weight"))
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer) if resid else 0.02)

    def forward(self, idx, targets=None):
        T = idx.shape[1]
        x = self.transformer.wte(idx)
        for block in self.transformer.h:
            x = block(x, self.cos[:T], self.sin[:T])
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = None if targets is None else F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss

    configure_optimizer = TorchGPT.configure_optimizer
