"""The embedded demo: a synthetic, iMiGUE-like corpus rendered from whole-body skeletons."""
