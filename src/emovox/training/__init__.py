"""Training, LR range test, metrics and evaluation protocols."""
