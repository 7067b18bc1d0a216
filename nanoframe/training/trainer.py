"""The training loop, shared by pretraining and fine-tuning.

    for step in range(start, max_iters):
        evaluate every eval_interval steps (fixed val batches; keep the best weights)
        lr from the warmup + cosine schedule
        grad_accum micro-batches: forward, loss / grad_accum, backward
        clip the global grad norm, AdamW step, zero grads
        log a metrics line; checkpoint every checkpoint_interval steps and at the end

Resume is exact: a checkpoint taken before step s holds the weights, AdamW moments, the batch
sampler's and the library's RNG states, so the losses from step s on equal an uninterrupted run's
bit for bit.
"""
import json
import math
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from nanoframe import random as nf_random
from nanoframe.autograd import no_grad
from nanoframe.errors import TrainingError
from nanoframe.nn.utils import clip_grad_norm_
from nanoframe.optim.lr_schedule import cosine_with_warmup
from nanoframe.training.checkpoint import list_checkpoints, load_checkpoint, prune_checkpoints, save_checkpoint




_PEAK = None


def sgemm_peak_flops():
    """Measured float32 GEMM throughput of this machine through NumPy's BLAS (FLOP/s), cached.

    The best of several 2048^3 products: a busy machine reads low, which shows as a high MFU.
    """
    global _PEAK
    if _PEAK is None:
        n = 2048
        a = np.ones((n, n), np.float32)
        a @ a  # warm up the BLAS threads
        best = math.inf
        for _ in range(5):
            t = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - t)
        _PEAK = 2 * n**3 / best
    return _PEAK


class Trainer:
    """Train `model` on `data` (anything with get_batch / val_batches / state_dict) into `out_dir`.

    `extra_state` is stored in every checkpoint's state.json (model config, tokenizer path...).
    """

    def __init__(self, model, data, config, out_dir, extra_state=None, show_progress=True,
                 optimizer=None):
        self.model, self.data, self.cfg = model, data, config
        self.out_dir = Path(out_dir)
        self.extra_state = dict(extra_state or {})
        self.show_progress = show_progress
        self.optimizer = optimizer or model.configure_optimizer(
            config.weight_decay, config.lr, (config.beta1, config.beta2))
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.step = 0
        self.best_val_loss = math.inf
        self.evals_since_best = 0
        self.val = data.val_batches(config.eval_iters)
        self.metrics_path = self.out_dir / "metrics.jsonl"
        self.tokens_per_step = config.batch_size * config.grad_accum * data.block_size

    # ---- schedule, eval, logging ----------------------------------------------------------------
    def lr_at(self, step):
        c = self.cfg
        return cosine_with_warmup(step, c.lr, c.min_lr, c.warmup_iters, c.lr_decay_iters or c.max_iters)

    @no_grad()
    def evaluate(self):
        """Mean loss over the fixed val batches, in eval mode."""
        was_training = self.model.training
        self.model.eval()
        losses = [float(self.model(x, y)[1].item()) for x, y in self.val]
        self.model.train(was_training)
        return float(np.mean(losses))

    def log(self, record):
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    # ---- checkpoints ----------------------------------------------------------------------------
    def state(self, val_loss=None):
        return {
            **self.extra_state,
            "step": self.step,
            "train_config": self.cfg.to_dict(),
            "best_val_loss": None if math.isinf(self.best_val_loss) else self.best_val_loss,
            "evals_since_best": self.evals_since_best,
            "val_loss": val_loss,
            "rng": nf_random.get_rng_state(),
            "data": self.data.state_dict(),
        }

    def save(self, val_loss=None):
        folder = save_checkpoint(self.out_dir / "checkpoints" / f"step_{self.step:06d}",
                                 self.model, self.optimizer, self.state(val_loss))
        prune_checkpoints(self.out_dir, self.cfg.keep_checkpoints)
        return folder

    def resume(self, folder=None):
        """Continue from a checkpoint folder (default: this run's latest)."""
        if folder is None:
            found = list_checkpoints(self.out_dir)
            if not found:
                raise FileNotFoundError(f"{self.out_dir} has no checkpoint to resume from")
            folder = found[-1]
        state = load_checkpoint(folder, self.model, self.optimizer)
        self.step = state["step"]
        self.best_val_loss = math.inf if state["best_val_loss"] is None else state["best_val_loss"]
        self.evals_since_best = state.get("evals_since_best", 0)
        nf_random.set_rng_state(state["rng"])
        self.data.load_state_dict(state["data"])
        self._truncate_metrics(self.step)
        return state

    def _truncate_metrics(self, step):
        """Drop metric lines from steps the resumed run will redo (a killed run may have logged them)."""
        if not self.metrics_path.is_file():
            return
        keep = [line for line in self.metrics_path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) < step]
        self.metrics_path.write_text("".join(line + "\n" for line in keep))

    # ---- the loop -------------------------------------------------------------------------------
    def train_step(self):
        """One optimizer step over grad_accum micro-batches; returns (mean loss, grad norm)."""
        cfg = self.cfg
        total = 0.0
        for _ in range(cfg.grad_accum):
            x, y = self.data.get_batch("train")
            _, loss = self.model(x, y)
            value = float(loss.item())
            if not math.isfinite(value):
                raise TrainingError(
                    f"loss is {value} at step {self.step}; stopping. The last good checkpoint is "
                    f"left intact in {self.out_dir / 'checkpoints'} (try a lower lr)")
            (loss / cfg.grad_accum if cfg.grad_accum > 1 else loss).backward()
            total += value
        norm = clip_grad_norm_(self.params, cfg.grad_clip) if cfg.grad_clip > 0 else math.nan
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total / cfg.grad_accum, float(norm)

    def maybe_evaluate(self):
        """Evaluate, log, keep the best weights; return True when early stopping says stop."""
        val_loss = self.evaluate()
        self.log({"step": self.step, "val_loss": val_loss})
        if val_loss < self.best_val_loss:
            self.best_val_loss, self.evals_since_best = val_loss, 0
            save_checkpoint(self.out_dir / "best", self.model, None, self.state(val_loss))
        else:
            self.evals_since_best += 1
        self.last_val_loss = val_loss
        patience = self.cfg.early_stop_patience
        return patience > 0 and self.evals_since_best >= patience

    def train(self):
        """Run to max_iters (or early stop / max_time); returns a summary dict."""
        from nanoframe.runtime import tune_malloc
        tune_malloc()   # opt-in malloc tuning: training reuses the same memory every step (nanoframe.runtime)
        cfg = self.cfg
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.model.train()
        flops_per_token = self.model.estimate_flops_per_token()
        peak = sgemm_peak_flops()
        self.last_val_loss = None
        start_step, t_start = self.step, time.perf_counter()
        stopped = "max_iters"
        bar = tqdm(total=cfg.max_iters, initial=self.step, desc="train", unit="step",
                   disable=not self.show_progress, dynamic_ncols=True)
        tok_per_sec = 0.0
        while self.step < cfg.max_iters:
            if self.step % cfg.eval_interval == 0 and self.maybe_evaluate():
                stopped = "early_stop"
                break
            lr = self.lr_at(self.step)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            t0 = time.perf_counter()
            loss, norm = self.train_step()
            dt = time.perf_counter() - t0
            inst = self.tokens_per_step / dt
            tok_per_sec = inst if tok_per_sec == 0 else 0.9 * tok_per_sec + 0.1 * inst
            mfu = tok_per_sec * flops_per_token / peak
            if self.step % cfg.log_interval == 0:
                self.log({"step": self.step, "loss": loss, "lr": lr, "grad_norm": norm,
                          "tokens_per_sec": round(inst, 1), "mfu": round(mfu, 4)})
            self.step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{tok_per_sec:,.0f}",
                            mfu=f"{100 * mfu:.1f}%", val=f"{self.last_val_loss or math.nan:.4f}")
            if self.step % cfg.checkpoint_interval == 0 and self.step < cfg.max_iters:
                self.save(self.last_val_loss)
            if cfg.max_time and time.perf_counter() - t_start > cfg.max_time:
                stopped = "max_time"
                break
        bar.close()
        if stopped != "early_stop":
            self.maybe_evaluate()
        folder = self.save(self.last_val_loss)
        elapsed = time.perf_counter() - t_start
        return {
            "steps": self.step,
            "stopped": stopped,
            "val_loss": self.last_val_loss,
            "best_val_loss": self.best_val_loss,
            "seconds": elapsed,
            "tokens_per_sec": (self.step - start_step) * self.tokens_per_step / max(elapsed, 1e-9),
            "checkpoint": str(folder),
        }
