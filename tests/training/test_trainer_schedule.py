"""The trainer drives the learning rate through optim's LRScheduler: each param group keeps its own
ratio to the peak lr (a smaller lr for a backbone) and its lr_scale."""
import pytest

from nanoframe import data as D
from nanoframe import optim
from nanoframe.models import GPT, GPTConfig
from nanoframe.optim.lr_schedule import cosine_with_warmup
from nanoframe.random import manual_seed
from nanoframe.training.config import TrainConfig
from nanoframe.training.trainer import Trainer

from tests.helpers.runs import SHAKESPEAREISH


def test_param_groups_keep_their_own_lr_ratio_and_scale(tmp_path):
    tok = D.train_tokenizer("char", [D.Document("c", SHAKESPEAREISH)])
    train, val = D.split_documents([D.Document("c", SHAKESPEAREISH)])
    D.prepare(train, val, tok, tmp_path / "run" / "data", show_progress=False)
    cfg = TrainConfig(batch_size=2, max_iters=6, eval_interval=100, eval_iters=1, warmup_iters=2, lr=1e-2,
                      min_lr=1e-3, checkpoint_interval=100)
    manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=1, n_embd=8))
    head = [p for n, p in model.named_parameters() if n.startswith("transformer.h.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("transformer.h.")]
    opt = optim.AdamW([{"params": rest}, {"params": head, "lr": cfg.lr / 10},
                       ], lr=cfg.lr)
    opt.param_groups[0]["lr_scale"] = 0.5
    seen = []
    step = opt.step
    opt.step = lambda: (seen.append([g["lr"] for g in opt.param_groups]), step())
    data = D.TokenData(tmp_path / "run" / "data", 8, 2)
    Trainer(model, data, cfg, tmp_path / "run", optimizer=opt, show_progress=False, tokenizer=tok).train()
    for s, (lr0, lr1) in enumerate(seen):
        expected = cosine_with_warmup(s, cfg.lr, cfg.min_lr, cfg.warmup_iters, cfg.max_iters)
        assert lr0 == pytest.approx(expected * 0.5, rel=1e-12)
        assert lr1 == pytest.approx(expected / 10, rel=1e-12)
