"""mirflow: turn a music library into a training-ready dataset.

This package holds the logic and knows nothing of Snakemake; the workflow's
rule scripts (scripts/rules/) are thin adapters over it.
"""

__version__ = "0.1.0"

import sys as _sys


class _BeforeNumba:
    """Gives this process a private, seeded numba cache just before numba's first
    import, so parallel jobs never corrupt a shared one (see mirflow.jit)."""

    def find_spec(self, name, path=None, target=None):
        if name == "numba":
            _sys.meta_path.remove(self)  # once, and not for the imports below
            from mirflow.jit import private_cache_safely

            private_cache_safely()
        return None  # the ordinary finders then import numba


if "numba" in _sys.modules:
    from mirflow.jit import adopt_loaded_numba

    adopt_loaded_numba()
elif not any(type(f).__name__ == "_BeforeNumba" for f in _sys.meta_path):
    _sys.meta_path.insert(0, _BeforeNumba())
