"""Per-site fine-tuning of the descriptor network (needs the `train` extra: torch, timm).

Kept import-light: ``training.simulator`` needs only numpy and OpenCV, so the demo and
tests can simulate camera views without importing torch.
"""
