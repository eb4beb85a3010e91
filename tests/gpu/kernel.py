"""The smallest Numba CUDA kernel: compiles through NVVM, links, loads, runs (used by e2e.sh)."""

import numpy as np

if not hasattr(np, "row_stack"):  # numba 0.68's CPU overloads still name np.row_stack, gone from NumPy 2.4
    np.row_stack = np.vstack

from numba import cuda


@cuda.jit
def add_one(values):
    i = cuda.grid(1)
    if i < values.size:
        values[i] += 1


data = cuda.to_device(np.zeros(32, dtype=np.int32))
add_one[1, 32](data)
print("kernel ran: sum =", int(data.copy_to_host().sum()))
