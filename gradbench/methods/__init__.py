"""Gradient methods. The contract lives in :mod:`gradbench.methods.base`; every method,
built in or not, is found through the registry (:mod:`gradbench.registry`)."""

from gradbench.methods.base import KINDS, GradFn, Method, check_result, rho

__all__ = ["KINDS", "GradFn", "Method", "check_result", "rho"]
