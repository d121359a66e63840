"""Training: config, loops (single-tasking and joint), adversarial task gradients, QAT, DDP."""
