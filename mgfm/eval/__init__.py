"""Evaluation protocols (linear probe, semi-supervised, fine-tuning, retrieval, emotion, ensemble) and metrics."""
