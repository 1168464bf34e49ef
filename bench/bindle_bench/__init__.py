"""The bindle-server benchmark; run it with `python bench/run.py` (see bench/run.py)."""
