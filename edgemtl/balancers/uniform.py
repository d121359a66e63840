"""Uniform weights: the plain sum of task losses."""

from __future__ import annotations

from edgemtl.balancers import BALANCERS
from edgemtl.balancers.base import Balancer


@BALANCERS.register("uniform")
class Uniform(Balancer):
    pass
