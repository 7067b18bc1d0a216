"""`mpiexec -n 2 nanoframe train|finetune` on this machine: equivalence with one process, exact
resume after kill -9 of one rank, a resume with another world size refused, one-line errors.

Each test launches real MPI jobs (skipped without the distributed extra); models are tiny and
runs are tens of steps, so the file takes well under a minute on 2 cores.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.helpers.mpi import curve, env, nanoframe, needs_mpi, rank_pid, words_corpus, MPIEXEC

pytestmark = needs_mpi

MODEL = ["--preset", "tiny", "--tokenizer", "char", "--n_layer", 2, "--n_head", 2, "--n_embd", 32,
         "--block_size", 32, "--no-sample", "--no-progress"]
SCHEDULE = ["--warmup_iters", 5, "--lr", 3e-3, "--eval_iters", 4, "--log_interval", 1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return words_corpus(tmp_path_factory.mktemp("corpus") / "words.txt")


def _check(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _close(a, b, rtol=2e-5):
    """Two metric curves: same steps and keys, values equal within float32 tolerance."""
    assert [(s, k) for s, k, _ in a] == [(s, k) for s, k, _ in b]
    va, vb = np.array([v for *_, v in a]), np.array([v for *_, v in b])
    np.testing.assert_allclose(va, vb, rtol=rtol, atol=1e-6)


def test_pretrain_two_ranks_equal_one_process_with_twice_the_batch(tmp_path, corpus):
    """50 steps with gradient accumulation (no_sync in the first micro-batch): 2 ranks x batch 4
    train like 1 process x batch 8, losses and val losses within float32 tolerance."""
    steps = ["--max_iters", 50, "--eval_interval", 25, "--checkpoint_interval", 50, "--grad_accum", 2]
    one = _check(nanoframe("train", "--data", corpus, "--out", tmp_path / "one", *MODEL, *SCHEDULE, *steps,
                           "--batch_size", 8))
    two = _check(nanoframe("train", "--data", corpus, "--out", tmp_path / "two", *MODEL, *SCHEDULE, *steps,
                           "--batch_size", 4, n=2))
    a, b = curve(tmp_path / "one"), curve(tmp_path / "two")
    assert len([1 for _, k, _ in a if k == "loss"]) == 50
    _close(a, b)
    losses = [v for _, k, v in a if k == "loss"]
    assert losses[-1] < losses[0] - 0.5                      # and it learns
    # rank 0 alone prints: one summary line, and the tokens/s counts both ranks' tokens
    assert two.stdout.count("done: 50 steps") == 1 and one.stdout.count("done: 50 steps") == 1
    state = json.loads((tmp_path / "two" / "checkpoints" / "step_000050" / "state.json").read_text())
    assert state["world_size"] == 2 and len(state["rank_states"]) == 2
    assert state["rank_states"][0]["data"] == state["rank_states"][1]["data"]   # one shared sampler
    assert state["rank_states"][0]["rng"] != state["rank_states"][1]["rng"]     # own dropout streams


def _instruction_files(tmp_path):
    """A BPE base run (random tiny GPT) and JSONL records whose prompts differ in length, so the
    two ranks hold different numbers of counted (non-ignored) targets."""
    from nanoframe import data as D
    from nanoframe.models import GPT, GPTConfig
    from nanoframe.random import manual_seed
    from nanoframe.training.run import save_run

    rng = np.random.default_rng(0)
    words = "what is the colour of sky grass snow answer blue green white please tell me".split()
    records = []
    for i in range(80):
        prompt = " ".join(rng.choice(words, size=int(rng.integers(1, 12)))) + "?"
        completion = " " + " ".join(rng.choice(words, size=int(rng.integers(1, 6))))
        records.append({"prompt": prompt, "completion": completion})
    jsonl = tmp_path / "instructions.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records))
    docs = [D.Document(str(i), r["prompt"] + r["completion"]) for i, r in enumerate(records)]
    tok = D.train_tokenizer("bpe", docs, 300, show_progress=False)
    manual_seed(0)
    base = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=48, n_layer=2, n_head=2, n_embd=32, dropout=0.0))
    save_run(tmp_path / "base", base, tok, kind="merge")
    return tmp_path / "base", jsonl


def test_lora_finetune_two_ranks_equal_one_process(tmp_path):
    """LoRA on instruction data (prompts masked with -100, counts differ per rank): 50 steps of
    2 ranks x batch 4 equal 1 process x batch 8; the gradient is weighted by counted targets."""
    base, jsonl = _instruction_files(tmp_path)
    args = ["finetune", "--from", base, "--data", jsonl, "--lora", "--lora-r", 4, "--no-sample", "--no-progress",
            "--max_iters", 50, "--eval_interval", 25, "--eval_iters", 3, "--early_stop_patience", 0,
            "--checkpoint_interval", 50, "--warmup_iters", 5]
    one = _check(nanoframe(*args, "--out", tmp_path / "one", "--batch_size", 8))
    two = _check(nanoframe(*args, "--out", tmp_path / "two", "--batch_size", 4, n=2))
    _close(curve(tmp_path / "one"), curve(tmp_path / "two"))
    assert (tmp_path / "two" / "adapter.safetensors").is_file()
    assert two.stdout.count("done: 50 steps") == 1, one.stdout


def _start(tmp_path, corpus, out, n, extra=()):
    cmd = [MPIEXEC, "-n", str(n), "--oversubscribe", sys.executable, "-m", "nanoframe", "train", "--data", corpus,
           "--out", out, *MODEL, *SCHEDULE, "--eval_interval", 20, "--checkpoint_interval", 10,
           "--lr_decay_iters", 1000, "--batch_size", 4, *extra]
    return subprocess.Popen([str(c) for c in cmd], env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_kill_one_rank_exits_at_once_and_resumes_bit_identically(tmp_path, corpus):
    """kill -9 of rank 1 mid-run: the job ends within seconds with one nanoframe line naming the
    resume command; the last checkpoint resumes and the run ends with the metrics, bit for bit,
    of a run that was never interrupted. Resuming with another world size is refused."""
    ref = _start(tmp_path, corpus, tmp_path / "ref", 2, ["--max_iters", 60])
    out, err = ref.communicate(timeout=240)
    assert ref.returncode == 0, err[-3000:]

    job = _start(tmp_path, corpus, tmp_path / "run", 2, ["--max_iters", 1000])
    victim = rank_pid(1, str(tmp_path / "run"))
    deadline = time.monotonic() + 120
    while not (tmp_path / "run" / "checkpoints" / "step_000020" / "state.json").is_file():
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()[1][-3000:]
        time.sleep(0.02)
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    _, err = job.communicate(timeout=60)
    assert time.monotonic() - killed_at < 10
    assert job.returncode != 0
    ours = [line for line in err.splitlines() if line.startswith("nanoframe:")]
    assert len(ours) == 1 and "mpiexec stopped the job" in ours[0], err
    assert f"mpiexec -n 2 nanoframe train --out {tmp_path / 'run'} --resume" in ours[0]

    resumed = nanoframe("train", "--out", tmp_path / "run", "--resume", "--max_iters", 60, "--no-sample",
                        "--no-progress", n=2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert curve(tmp_path / "run") == curve(tmp_path / "ref")           # bit-identical, every step

    other = nanoframe("train", "--out", tmp_path / "run", "--resume", "--max_iters", 70, "--no-sample",
                      "--no-progress")
    assert other.returncode == 2
    lines = [line for line in other.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("nanoframe: error:") and "trained by 2 process(es)" in lines[-1], other.stderr
    assert "mpiexec -n 2" in lines[-1]
    assert curve(tmp_path / "run") == curve(tmp_path / "ref")           # nothing written by the refusal


def test_an_error_on_rank_0_while_preparing_is_one_line_and_no_hang(tmp_path):
    """A user error found by rank 0 (the others wait for it) ends the job promptly, reported once."""
    t = time.monotonic()
    proc = nanoframe("train", "--data", tmp_path / "missing.txt", "--out", tmp_path / "run", *MODEL, n=2,
                     timeout=120)
    assert time.monotonic() - t < 60
    assert proc.returncode != 0
    ours = [line for line in proc.stderr.splitlines() if line.startswith("nanoframe:")]
    assert len(ours) == 1 and "missing.txt" in ours[0], proc.stderr


def test_kill_rank_0_is_reported_by_rank_1(tmp_path, corpus):
    """When rank 0 itself is killed, rank 1 (on the same machine) prints the one line."""
    job = _start(tmp_path, corpus, tmp_path / "run", 2, ["--max_iters", 1000])
    victim = rank_pid(0, str(tmp_path / "run"))
    deadline = time.monotonic() + 120
    while not (tmp_path / "run" / "checkpoints" / "step_000010" / "state.json").is_file():
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()[1][-3000:]
        time.sleep(0.02)
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    _, err = job.communicate(timeout=60)
    assert time.monotonic() - killed_at < 10 and job.returncode != 0
    ours = [line for line in err.splitlines() if line.startswith("nanoframe:")]
    assert len(ours) == 1 and "mpiexec stopped the job" in ours[0] and "--resume" in ours[0], err
