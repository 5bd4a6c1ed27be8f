"""pyferry benchmark app `numpy`: import numpy and do a 200x200 matrix product.

The matrices hold small integers, so every product entry and the checksum are exact whatever
order the BLAS kernel sums in: the output is the same on every machine.
With PYFERRY_BENCH_SMAPS=1 it also prints a `SMAPS` line (see `print_smaps`) for bench/run.py.
"""

import os

import numpy as np


def print_smaps():
    """Prints this process's unshared memory (Private_Clean + Private_Dirty) and Rss, in KiB."""
    fields = {}
    with open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1])
    private = fields["Private_Clean"] + fields["Private_Dirty"]
    print(f"SMAPS private_kib={private} rss_kib={fields['Rss']}")


matrix = (np.arange(200 * 200, dtype=np.float64) % 7).reshape(200, 200)
product = matrix @ matrix.T
print(f"numpy {np.__version__} checksum {int(product.sum())}")

if os.environ.get("PYFERRY_BENCH_SMAPS") == "1":
    print_smaps()
