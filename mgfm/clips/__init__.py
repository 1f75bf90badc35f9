"""Clip sampling (rejection sampler, MG-IoD) and the packed skeleton and RGB clip datasets."""
