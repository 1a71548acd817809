"""Plugins that kill the process measuring them, and one that allocates a known number of
bytes, for the supervisor and memory tests. Each behaves (backprop's gradient) except
where it is told to misbehave."""

import ctypes
import os
import time

import numpy as np

from gradbench import Method
from gradbench.methods.backprop import Backprop

MiB = 2**20


def crash_n() -> int:
    """The width at which the crashing plugins die (GRADBENCH_TEST_CRASH_N, default 3)."""
    return int(os.environ.get("GRADBENCH_TEST_CRASH_N", "3"))


class _Crashes(Method):
    kind = "exact"
    description = "backprop, except that it kills its process at N = 3"

    def cost(self, net):
        return 3.0

    def die(self) -> None:
        raise NotImplementedError

    def prepare(self, problem):
        grad_fn = Backprop().prepare(problem)

        def crashing(theta):
            if problem.net.N == crash_n():
                self.die()
            return grad_fn(theta)

        return crashing


class Exits(_Crashes):
    name = "crash-exit"

    def die(self):
        os._exit(3)


class Segfaults(_Crashes):
    name = "crash-segv"

    def die(self):
        ctypes.string_at(0)  # reads address 0: SIGSEGV


class Sleeps(_Crashes):
    """Sleeps GRADBENCH_TEST_SLEEP_S seconds at N = 3 after creating the file named by
    GRADBENCH_TEST_SLEEPING, for the tests that kill a run or run another beside it."""

    name = "crash-sleep"

    slept = False

    def die(self):
        if not self.slept:  # once: the timed rounds run at full speed
            self.slept = True
            open(os.environ["GRADBENCH_TEST_SLEEPING"], "w").close()
            time.sleep(float(os.environ.get("GRADBENCH_TEST_SLEEP_S", "60")))


class Allocates(Method):
    """Touches exactly ``GRADBENCH_TEST_ALLOCATE`` MiB (default 64) on every call and
    declares that as its memory model."""

    name = "allocates"
    kind = "exact"
    description = "backprop plus a known allocation"

    def mebibytes(self) -> int:
        return int(os.environ.get("GRADBENCH_TEST_ALLOCATE", "64"))

    def cost(self, net):
        return 3.0

    def memory(self, net, B):
        return self.mebibytes() * MiB

    def prepare(self, problem):
        grad_fn = Backprop().prepare(problem)
        n = self.mebibytes() * MiB // 8

        def allocating(theta):
            block = np.ones(n)  # every page written
            block[::512] += 1.0
            return grad_fn(theta)

        return allocating
