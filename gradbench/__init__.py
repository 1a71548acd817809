"""gradbench: why backpropagation? Every way to get an MLP's gradient, measured."""

from gradbench.methods.base import GradFn, Method, rho
from gradbench.model import Network
from gradbench.problem import Problem, make_problem

__all__ = ["GradFn", "Method", "Network", "Problem", "make_problem", "rho"]
__version__ = "0.1.0"
