"""Training: augmentations, the shared training loop (DDP, AMP, checkpoints, resume), model artifacts."""
