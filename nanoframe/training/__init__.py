"""Training: the shared pretrain/fine-tune loop, its config and checkpoints."""
