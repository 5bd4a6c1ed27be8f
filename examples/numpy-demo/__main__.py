"""pyferry's demo: numpy imported from inside the executable, its native code loaded from memory."""

import sys

import numpy as np

matrix = np.arange(40_000, dtype=np.float64).reshape(200, 200) / 40_000
product = matrix @ matrix.T
print(f"numpy {np.__version__} from {np.__file__}")
print(f"200x200 matmul: trace = {np.trace(product):.6f}")
print(f"eigenvalues of [[2, 1], [1, 2]]: {sorted(np.linalg.eigvalsh([[2.0, 1.0], [1.0, 2.0]]).tolist())}")
print(f"running as {sys.executable}, sys.path = {sys.path}")
