"""The training loop, shared by pretraining and fine-tuning.

    for step in range(start, max_iters):
        evaluate every eval_interval steps (fixed val batches; keep the best weights in best/)
        lr from the warmup + cosine schedule
        grad_accum micro-batches: forward, loss / grad_accum, backward
        global grad norm (clipped to grad_clip); a non-finite loss or norm stops before the update
        AdamW step, zero grads
        log a metrics line; checkpoint every checkpoint_interval steps and at the end

Everything on disk goes through the `Run` that owns the folder (training/run.py). Resume is exact:
a checkpoint taken before step s holds the weights, AdamW moments, the batch sampler's and the
library's RNG states, so the losses from step s on equal an uninterrupted run's bit for bit.
Non-finite weights are never saved, so the last checkpoint is always a good one.

Under mpiexec (nanoframe.distributed) every rank runs this loop on its share of each global batch:
the model is wrapped in DistributedDataParallel, each micro-batch's loss is weighted by the share
of the global batch's counted targets this rank holds (instruction data masks prompts with
IGNORE_INDEX, so the shares differ), evaluation is sharded the same way, and only rank 0 writes
(metrics, checkpoints, best/, the progress bar). A checkpoint records the world size and every
rank's RNG and sampler state; it resumes exactly with the same world size and is refused with another.
"""
import contextlib
import hashlib
import math
import time

import numpy as np
from tqdm.auto import tqdm

from nanoframe import distributed as dist
from nanoframe import random as nf_random
from nanoframe.autograd import no_grad
from nanoframe.data.instructions import IGNORE_INDEX
from nanoframe.errors import CheckpointError, TrainingError
from nanoframe.nn.utils import clip_grad_norm_
from nanoframe.optim.lr_schedule import LRScheduler, cosine_with_warmup
from nanoframe.training.run import Run

class GemmPeak:
    """This machine's float32 GEMM throughput through NumPy's BLAS (FLOP/s), the denominator of MFU.

    A measurement is the best of a few 1024^3 products; the highest of all measurements is kept.
    One measurement at start-up alone read low on a busy machine, and MFU then showed 120%, so the
    trainer measures again at evaluations and whenever MFU would pass 100%, at most once every
    `min_interval` seconds (a measurement costs a few GEMMs; short runs evaluate often).
    """

    def __init__(self, n=1024, repeats=3, min_interval=30.0):
        self.n, self.repeats, self.min_interval, self.flops = n, repeats, min_interval, 0.0
        self._last = -math.inf

    def measure(self):
        a = np.ones((self.n, self.n), np.float32)
        a @ a                                   # wake the BLAS threads
        best = math.inf
        for _ in range(self.repeats):
            t = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - t)
        self.flops = max(self.flops, 2 * self.n**3 / best)
        self._last = time.monotonic()
        return self.flops

    def refresh(self):
        """Measure again unless the last measurement is under min_interval seconds old."""
        if time.monotonic() - self._last >= self.min_interval:
            self.measure()
        return self.flops


GEMM_PEAK = GemmPeak()


class Trainer:
    """Train `model` on `data` (a nanoframe.data.BatchSource) into `run` (a Run, or a folder path).

    `extra_state` is stored in every checkpoint's state.json (the run's tokenizer and data hashes,
    a LoRA config...). A folder that is not a run yet becomes one: config.json is written from the
    model and training configs, and `tokenizer` (when given) is copied in so the run can be sampled.
    """

    def __init__(self, model, data, config, run, extra_state=None, show_progress=True, optimizer=None,
                 tokenizer=None):
        self.model, self.data, self.cfg = model, data, config
        self.run = run if isinstance(run, Run) else Run(run)
        self.extra_state = dict(extra_state or {})
        self.tokenizer = tokenizer
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.is_writer = self.rank == 0            # only rank 0 writes the run and shows progress
        self.show_progress = show_progress and self.is_writer
        if self.world_size > 1:
            data.shard(self.rank, self.world_size)
            if self.rank > 0:                      # own dropout masks on each rank (nanoGPT's seed offset)
                nf_random.manual_seed(config.seed + self.rank)
        # rank 0's weights everywhere, gradients averaged over the ranks (the model itself with one process)
        # 1 MB buckets rather than torch's 25: most of a small GPT's gradient then travels while backward
        # runs (benchmarks/bench_distributed.py; the wait after backward per bucket size is in RESULTS.md)
        self.ddp = dist.DistributedDataParallel(model, bucket_cap_mb=1) if self.world_size > 1 else model
        self.optimizer = optimizer or model.configure_optimizer(
            config.weight_decay, config.lr, (config.beta1, config.beta2))
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        c = config
        total = c.lr_decay_iters or c.max_iters
        self.schedule = lambda step: cosine_with_warmup(step, c.lr, c.min_lr, c.warmup_iters, total)
        # sets each group's lr to schedule(step) times its ratio to config.lr (times its lr_scale)
        self.scheduler = LRScheduler(self.optimizer, self.schedule)
        self.step = 0
        self.best_val_loss = math.inf
        self.evals_since_best = 0
        self.last_val_loss = None
        self._owns_lock = False
        self.val = data.val_batches(config.eval_iters)
        self.tokens_per_step = config.batch_size * config.grad_accum * data.block_size * self.world_size

    # ---- schedule, eval, logging ----------------------------------------------------------------
    def lr_at(self, step):
        """The schedule's lr at `step` (groups at the optimizer's lr train with exactly this)."""
        return self.schedule(step)

    @no_grad()
    def evaluate(self):
        """Mean loss over the fixed val batches, in eval mode (each global batch's mean over its
        counted targets, from every rank's share, when distributed)."""
        was_training = self.model.training
        self.model.eval()
        if self.world_size == 1:
            losses = [float(self.model(x, y)[1].item()) for x, y in self.val]
        else:
            sums = np.zeros((len(self.val), 2))    # per global batch: this rank's loss sum, its counted targets
            for i, (x, y) in enumerate(self.val):
                n = int((y != IGNORE_INDEX).sum())
                if n:
                    sums[i] = float(self.model(x, y)[1].item()) * n, n
            dist.all_reduce(sums)
            # rank 0's value everywhere: early stopping and best/ must decide alike on every rank
            losses = dist.broadcast(np.array([np.mean(sums[:, 0] / sums[:, 1])]))
        self.model.train(was_training)
        return float(np.mean(losses))

    def log(self, record):
        if self.is_writer:
            self.run.log_metrics(record)

    # ---- checkpoints ----------------------------------------------------------------------------
    def state(self, val_loss=None):
        """What a checkpoint's state.json holds (a collective when distributed: every rank's RNG
        and sampler state are gathered)."""
        model_config = getattr(self.model, "config", None)
        ranks = dist.all_gather_json({"rng": nf_random.get_rng_state(), "data": self.data.state_dict()}) \
            if self.world_size > 1 else None
        return {
            **({"model_config": model_config.to_dict()} if model_config is not None else {}),
            **self.extra_state,
            "step": self.step,
            "train_config": self.cfg.to_dict(),
            "best_val_loss": None if math.isinf(self.best_val_loss) else self.best_val_loss,
            "evals_since_best": self.evals_since_best,
            "val_loss": val_loss,
            "rng": nf_random.get_rng_state(),
            "data": self.data.state_dict(),
            "world_size": self.world_size,
            **({"rank_states": ranks} if ranks is not None else {}),
        }

    def _check_weights_finite(self):
        for p in self.params:
            if not np.isfinite(p.array).all():
                raise dist.collective_error(TrainingError(
                    f"the weights became non-finite at step {self.step}; stopping without saving. "
                    f"The last good checkpoint is left intact in {self.run.root} (try a lower lr)"))
        if self.world_size > 1:                    # the ranks must hold the same weights: checked, not assumed
            digest = hashlib.sha256()
            for p in self.params:
                digest.update(np.ascontiguousarray(p.array).tobytes())
            if len(set(dist.all_gather_json(digest.hexdigest()))) > 1:
                raise dist.collective_error(TrainingError(
                    f"the ranks' weights differ at step {self.step}; stopping without saving (a bug: "
                    f"please report it). The last good checkpoint is left intact in {self.run.root}"))

    def save(self, val_loss=None):
        self._check_weights_finite()
        state = self.state(val_loss)
        if not self.is_writer:
            return self.run.checkpoint_dir(self.step)
        return self.run.save_checkpoint(self.step, self.model, self.optimizer, state, self.cfg.keep_checkpoints)

    def resume(self, folder=None):
        """Continue from a checkpoint folder (default: the run's newest one that loads)."""
        self._acquire()
        try:                # every rank reads the same files: an error is the same everywhere
            folder, state = self._load(folder)
        except CheckpointError as e:
            raise dist.collective_error(e) from None
        if self.is_writer:
            self.run.truncate_metrics(self.step)
        return state

    def _load(self, folder):
        from nanoframe.training.checkpoint import load_checkpoint

        state = None
        if folder is None and self.world_size > 1:
            folder, state = self._leader_picks_checkpoint()        # state: rank 0's, loaded already
        if folder is None:
            folder, state = self.run.load_latest(self.model, self.optimizer)
        elif state is None:
            _, state = load_checkpoint(folder, self.model, self.optimizer)
        saved_world = state.get("world_size", 1)
        if saved_world != self.world_size:
            how = "in one process" if saved_world == 1 else f"with mpiexec -n {saved_world}"
            raise CheckpointError(f"{folder} was trained by {saved_world} process(es) and this job has {self.world_size}; "
                                  f"an exact resume needs the same number (each rank's batches and RNG state are "
                                  f"in the checkpoint): resume it {how}")
        own = state["rank_states"][self.rank] if self.world_size > 1 else state
        for key in ("rng", "data"):
            if not own.get(key):
                raise CheckpointError(f"{folder}/state.json has no {key!r} state: it cannot be resumed exactly")
        self.step = state["step"]
        best = state.get("best_val_loss")
        self.best_val_loss = math.inf if best is None else best
        self.evals_since_best = state.get("evals_since_best", 0)
        try:
            nf_random.set_rng_state(own["rng"])
        except (TypeError, KeyError, ValueError, OverflowError) as e:
            raise CheckpointError(f"{folder}/state.json: field 'rng' is not a generator state ({type(e).__name__})") from None
        self.data.load_state_dict(own["data"], where=f"{folder}/state.json")
        return folder, state

    def _leader_picks_checkpoint(self):
        """Distributed: rank 0 finds the newest checkpoint that loads (warning once, and setting a
        damaged newer one aside alone: one writer) and every other rank loads that same folder."""
        choice, state = {}, None
        if self.is_writer:
            try:
                folder, state = self.run.load_latest(self.model, self.optimizer)
                choice["folder"] = str(folder)
            except CheckpointError as e:
                choice["error"] = str(e)
        choice = dist.broadcast_json(choice)
        if "error" in choice:
            raise CheckpointError(choice["error"])
        return choice["folder"], state

    # ---- the loop -------------------------------------------------------------------------------
    def train_step(self):
        """One optimizer step over grad_accum micro-batches; returns (mean loss, grad norm).

        Distributed, the gradients are reduced in the last micro-batch's backward only (no_sync
        before it). DDP averages over the N ranks, but the global micro-batch's loss is the mean
        over all its counted targets, so rank r's loss is weighted by N * n_r / n (n_r its counted
        targets, n everyone's): the average is then sum_r n_r * grad(loss_r) / n, the gradient
        one process gets from the whole batch. With equal counts the weight is exactly 1."""
        cfg = self.cfg
        total = 0.0
        for i in range(cfg.grad_accum):
            x, y = self.data.get_batch("train")
            share = self._target_share(y)
            last = i == cfg.grad_accum - 1
            with self.ddp.no_sync() if self.world_size > 1 and not last else contextlib.nullcontext():
                _, loss = self.ddp(x, y)
                value = float(loss.item())
                if self.world_size == 1 and not math.isfinite(value):
                    self._stop_on_loss(value)
                scaled = loss / cfg.grad_accum if cfg.grad_accum > 1 else loss
                (scaled * share if share != 1.0 else scaled).backward()
            total += value * share
        if self.world_size > 1:                    # the global loss: every rank's weighted share
            total = float(dist.all_reduce(np.array([total]))[0]) / self.world_size
            if not math.isfinite(total):           # the same on every rank: they stop together
                self._stop_on_loss(total)
        norm = float(clip_grad_norm_(self.params, cfg.grad_clip if cfg.grad_clip > 0 else math.inf))
        if not math.isfinite(norm):
            raise dist.collective_error(TrainingError(
                f"the gradient norm is {norm} at step {self.step}; stopping before the update. The last good "
                f"checkpoint is left intact in {self.run.root} (try a lower lr or grad_clip)"))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total / cfg.grad_accum, norm

    def _stop_on_loss(self, value):
        raise dist.collective_error(TrainingError(
            f"loss is {value} at step {self.step}; stopping. The last good checkpoint is "
            f"left intact in {self.run.root} (try a lower lr)"))

    def _target_share(self, y):
        """N * n_r / n for this rank's micro-batch targets y (1.0 with one process)."""
        if self.world_size == 1:
            return 1.0
        mine = float((y != IGNORE_INDEX).sum())
        everyone = float(dist.all_reduce(np.array([mine]))[0])
        return self.world_size * mine / everyone if everyone else 1.0

    def maybe_evaluate(self):
        """Evaluate, log, keep the best weights; return True when early stopping says stop."""
        val_loss = self.evaluate()
        if not math.isfinite(val_loss):          # the same value on every rank: reported once
            raise dist.collective_error(TrainingError(f"the validation loss is {val_loss} at step {self.step}; stopping. The last good "
                                f"checkpoint is left intact in {self.run.root} (try a lower lr; or the validation "
                                "data has no target to score)"))
        GEMM_PEAK.refresh()
        self.log({"step": self.step, "val_loss": val_loss})
        if val_loss < self.best_val_loss:
            self.best_val_loss, self.evals_since_best = val_loss, 0
            self._check_weights_finite()
            state = self.state(val_loss)
            if self.is_writer:
                self.run.save_best(self.model, state)
        else:
            self.evals_since_best += 1
        self.last_val_loss = val_loss
        patience = self.cfg.early_stop_patience
        return patience > 0 and self.evals_since_best >= patience

    def _acquire(self):
        """Lock the run unless the caller (the CLI, finetune) already holds its lock (rank 0 only)."""
        if self.is_writer and not self.run.locked:
            self.run.check_writable_target()
            self.run.lock()
            self._owns_lock = True

    def _start_run(self):
        """Make the folder a run if it is not one yet; a fresh start drops stale metrics (rank 0)."""
        run = self.run
        if not self.is_writer:
            return
        if not run.config_path.is_file():
            tok_sha = run.install_tokenizer(self.tokenizer) if self.tokenizer is not None else None
            model_config = getattr(self.model, "config", None)
            data_dir = getattr(self.data, "dir", None)          # TokenData's folder
            run.write_config({"kind": "pretrain", "model": model_config.to_dict() if model_config else None,
                              "train": self.cfg.to_dict(), "tokenizer": {"file": "tokenizer.json", "sha256": tok_sha},
                              "data": run.data_record(data_dir, "tokens") if data_dir is not None else None})
            self.extra_state.setdefault("tokenizer_sha256", tok_sha)
        if self.step == 0:
            run.truncate_metrics(0)      # a fresh start: stale lines of an interrupted attempt go

    def train(self):
        """Run to max_iters (or early stop / max_time); returns a summary dict."""
        from nanoframe.runtime import tune_malloc

        tune_malloc()   # opt-in malloc tuning: training reuses the same memory every step (nanoframe.runtime)
        self._acquire()
        try:
            self._start_run()
            return self._loop()
        finally:
            if self._owns_lock:
                self.run.unlock()
                self._owns_lock = False

    def _out_of_time(self, t_start):
        """max_time has passed (rank 0's clock decides for every rank, so they stop together)."""
        late = np.array([time.perf_counter() - t_start > self.cfg.max_time], np.float64)
        return bool(dist.broadcast(late)[0]) if self.world_size > 1 else bool(late[0])

    def _loop(self):
        cfg = self.cfg
        self.model.train()
        flops_per_token = self.model.estimate_flops_per_token()
        GEMM_PEAK.refresh()
        start_step, t_start = self.step, time.perf_counter()
        stopped = "max_iters"
        bar = tqdm(total=cfg.max_iters, initial=self.step, desc="train", unit="step",
                   disable=not self.show_progress, dynamic_ncols=True)
        tok_per_sec = 0.0
        while self.step < cfg.max_iters:
            if self.step % cfg.eval_interval == 0 and self.maybe_evaluate():
                stopped = "early_stop"
                break
            self.scheduler.step(self.step)
            lr = self.lr_at(self.step)
            t0 = time.perf_counter()
            loss, norm = self.train_step()
            dt = time.perf_counter() - t0
            inst = self.tokens_per_step / dt
            tok_per_sec = inst if tok_per_sec == 0 else 0.9 * tok_per_sec + 0.1 * inst
            # distributed: the job's tokens over every rank's peak (rank 0's measurement, N times)
            mfu = tok_per_sec * flops_per_token / (GEMM_PEAK.flops * self.world_size)
            if mfu > 1.0:                        # the peak was measured in a busy moment
                mfu = tok_per_sec * flops_per_token / (GEMM_PEAK.refresh() * self.world_size)
            if self.step % cfg.log_interval == 0:
                self.log({"step": self.step, "loss": loss, "lr": lr, "grad_norm": norm,
                          "tokens_per_sec": round(inst, 1), "mfu": round(mfu, 4)})
            self.step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{tok_per_sec:,.0f}",
                            mfu=f"{100 * mfu:.1f}%", val=f"{self.last_val_loss or math.nan:.4f}",
                            refresh=False)       # drawn by update()'s own timer, not each step
            if self.step % cfg.checkpoint_interval == 0 and self.step < cfg.max_iters:
                self.save(self.last_val_loss)
            if cfg.max_time and self._out_of_time(t_start):
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
