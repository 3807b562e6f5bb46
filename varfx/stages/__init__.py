"""The pipeline stages: ingest -> precompute-ld -> fit -> score / evaluate.

Each stage module exposes a ``run_<stage>(...)`` function that the CLI calls; a stage
reads the store the previous stage wrote and writes its own store atomically.
"""
