"""instastore's load scripts: ``python -m bench seed|run|refs|video-memory``.

They run against a running service (either adapter) and write reports under
``bench/results/``. See bench/README.md.
"""
