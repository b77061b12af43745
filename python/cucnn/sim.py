"""The sim device: the CUDA kernels compiled by the host compiler and run by cucnn's SIMT runtime.

Knobs (also the environment variables SIMT_ORDER and SIMT_THREADS, read at import):

* ``set_order("forward" | "reverse" | "random:SEED")`` — the order in which the threads of a block
  run between two synchronisation points. A missing ``__syncthreads`` gives a wrong answer in at
  least one order; correct kernels give bitwise-equal results in every order.
* ``set_threads(n)`` — host threads that run blocks in parallel (default 1).
"""
from __future__ import annotations

import contextlib

from ._backend import sim_module


def is_available() -> bool:
    """Whether the sim device can run kernels. Never raises."""
    try:
        return sim_module() is not None
    except Exception:
        return False


def set_order(order: str) -> None:
    if not isinstance(order, str):
        raise TypeError(f"order must be a str, got {type(order).__name__}")
    sim_module().set_order(order)


def get_order() -> str:
    return sim_module().get_order()


def set_threads(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    sim_module().set_threads(n)


def get_threads() -> int:
    return sim_module().get_threads()


@contextlib.contextmanager
def order(name: str):
    """Run the body with SIMT order ``name``, then restore the previous one."""
    prev = get_order()
    set_order(name)
    try:
        yield
    finally:
        set_order(prev)


@contextlib.contextmanager
def threads(n: int):
    prev = get_threads()
    set_threads(n)
    try:
        yield
    finally:
        set_threads(prev)
