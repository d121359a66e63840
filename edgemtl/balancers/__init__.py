"""Loss balancers, one file each, registered by name (see :class:`Balancer`)."""

from __future__ import annotations

from typing import Any

from edgemtl.balancers.base import BalanceContext, Balancer
from edgemtl.registry import Registry

BALANCERS: Registry[type[Balancer]] = Registry("balancer", package="edgemtl.balancers")


def build_balancer(
    name: str, tasks: list[str], fixed_weights: dict[str, float] | None = None, **params: Any
) -> Balancer:
    """Instantiate balancer ``name``; unknown hyper-parameters raise naming the valid ones."""
    import inspect

    from edgemtl.errors import EdgeMTLError, did_you_mean

    cls = BALANCERS.get(name)
    sig = inspect.signature(cls.__init__)
    valid = [p for p in sig.parameters if p not in ("self", "tasks", "fixed_weights")]
    for key in params:
        if key not in valid:
            raise EdgeMTLError(
                f"balancer '{name}' has no parameter '{key}'.{did_you_mean(key, valid)} "
                f"Valid: {', '.join(valid) or '(none)'}"
            )
    return cls(tasks, fixed_weights=fixed_weights, **params)


__all__ = ["BALANCERS", "BalanceContext", "Balancer", "build_balancer"]
