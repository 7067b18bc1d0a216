"""`nanoframe finetune --from-hf` on a tiny random Hugging Face qwen2 (tied head, q/k/v biases) with
LoRA on all seven projections, killed with SIGKILL after its first checkpoint and resumed: the
resumed run's adapter is byte for byte the uninterrupted run's; merged, it leaves as a qwen2 folder
transformers opens with the same logits."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.hf import assert_export_matches_transformers, tiny_hf_folder

REPO = Path(__file__).resolve().parents[2]
TEXT = ("First Citizen: Before we proceed any further, hear me speak. All: Speak, speak. "
        "You are all resolved rather to die than to famish? Resolved. resolved. ") * 40


def run(*args, wait=True):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "nanoframe", *map(str, args)]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def qwen2_folder(tmp_path):
    return tiny_hf_folder(tmp_path / "hf-qwen2", "qwen2", TEXT, 280, tie_word_embeddings=True)


def test_qwen2_lora_finetune_killed_and_resumed_equals_uninterrupted(qwen2_folder, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from nanoframe.io import load_safetensors
    from nanoframe.training.run import load_for_inference

    data = tmp_path / "t.txt"
    data.write_text(TEXT)
    common = ["finetune", "--from-hf", qwen2_folder, "--data", data, "--lora", "--lora-r", 2, "--block_size", 16,
              "--batch_size", 2, "--max_iters", 40, "--eval_interval", 10, "--eval_iters", 2,
              "--checkpoint_interval", 10, "--early_stop_patience", 0, "--no-progress", "--no-sample"]
    done = run(*common, "--out", tmp_path / "ref")
    assert done.returncode == 0, done.stderr
    adapter = load_safetensors(tmp_path / "ref" / "adapter.safetensors")
    assert len(adapter) == 2 * 7 * 2                                     # A, B on 7 projections in 2 layers

    killed = tmp_path / "killed"
    proc = run(*common, "--out", killed, wait=False)
    first = killed / "checkpoints" / "step_000010" / "state.json"
    deadline = time.time() + 120
    while not first.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    resumed = run("finetune", "--out", killed, "--resume", "--no-progress", "--no-sample")
    assert resumed.returncode == 0, resumed.stderr
    assert (killed / "adapter.safetensors").read_bytes() == (tmp_path / "ref" / "adapter.safetensors").read_bytes()

    merged = tmp_path / "merged"
    assert run("lora", "merge", "--base", qwen2_folder, "--adapter", killed, "--out", merged).returncode == 0
    model, _, _, _ = load_for_inference(merged)
    assert_export_matches_transformers(model, tmp_path / "exported")
    written = json.loads((tmp_path / "exported" / "config.json").read_text())
    assert written["model_type"] == "qwen2" and written["tie_word_embeddings"] is True
