"""Clip sampling: the MG duration prior, the rejection sampler, MG-IoD, the duration figure."""
