"""Shared constants of the training tests."""

SHAKESPEAREISH = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n\n"
) * 30  # about 6 KB

# A model small enough that a CLI run of a few dozen steps takes a second or two.
TINY = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "16", "--batch_size", "4",
        "--warmup_iters", "2", "--eval_iters", "2", "--no-progress", "--no-sample"]


def cli(*args):
    """Run the `nanoframe` command in-process with str arguments; returns the exit code."""
    from nanoframe.cli import main

    return main([str(a) for a in args])


def one_error_line(capsys, *args):
    """Run a command that must fail as a user error: exit code 2, no traceback, exactly one
    `nanoframe: error:` line and it ends stderr. Returns that line."""
    code = cli(*args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert "Traceback" not in "\n".join(err)
    errors = [line for line in err if line.startswith("nanoframe: error:")]
    assert len(errors) == 1 and err[-1] == errors[0], err
    return errors[0]


def losses(run_dir):
    """step -> training loss of a run's metrics.jsonl."""
    import json

    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines) if "loss" in r}
