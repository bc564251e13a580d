"""mirflow: turn a music library into a training-ready dataset.

This package holds the logic and knows nothing of Snakemake; the workflow's
rule scripts (scripts/rules/) are thin adapters over it.
"""

__version__ = "0.1.0"
