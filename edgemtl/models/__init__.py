"""Architectures and backbones, registered by name; ``create_model`` builds one from a config."""

from __future__ import annotations

from typing import Any

from edgemtl.models.backbones import BACKBONES
from edgemtl.registry import Registry

ARCHITECTURES: Registry[type] = Registry("architecture", package="edgemtl.models.archs")


def create_model(cfg: Any = None, **overrides: Any):
    """Build a model from a :class:`ModelConfig`, a config dict, or keyword arguments."""
    from edgemtl.models.config import ModelConfig

    if cfg is None:
        cfg = ModelConfig(**overrides)
    elif isinstance(cfg, dict):
        cfg = ModelConfig.from_dict({**cfg, **overrides})
    elif overrides:
        cfg = cfg.replace(**overrides)
    return ARCHITECTURES.get(cfg.arch)(cfg)


__all__ = ["ARCHITECTURES", "BACKBONES", "create_model"]
