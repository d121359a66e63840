"""edgemtl: multi-task dense prediction from training to phones.

The package root stays import-light (no torch) so that ``edgemtl --help`` is instant;
heavy modules are imported by the subpackages that need them.
"""

__version__ = "0.1.0"

from edgemtl.errors import EdgeMTLError, UnsupportedError  # noqa: E402

__all__ = ["EdgeMTLError", "UnsupportedError", "__version__"]
