"""Shared constants of the training tests."""

SHAKESPEAREISH = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n\n"
) * 30  # about 6 KB

# A model small enough that a CLI run of a few dozen steps takes a second or two.
TINY = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "16", "--batch_size", "4",
        "--warmup_iters", "2", "--eval_iters", "2", "--no-progress", "--no-sample"]
