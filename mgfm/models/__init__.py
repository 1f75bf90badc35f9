"""Encoders, projectors and losses of the MG foundation models."""
