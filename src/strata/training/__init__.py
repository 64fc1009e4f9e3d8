"""Training: losses, optimizers and LR schedules, callbacks, and the trainer loop."""
