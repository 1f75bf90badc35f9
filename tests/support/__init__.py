"""Helpers shared by tests and benchmarks: small synthetic inputs of each stage (``clips``, ``features``,
``skeleton``) and the one way tests run Snakemake (``workflow``). Not part of the ``mgfm`` package: nothing
in the pipeline may depend on them."""
