"""One file per architecture; each registers itself in ``edgemtl.models.ARCHITECTURES``."""
