"""pyferry benchmark app `hello`: the smallest program, to measure start-up alone.

With PYFERRY_BENCH_SMAPS=1 it also prints a `SMAPS` line (see `print_smaps`) for bench/run.py.
"""

print('hi')


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


# `posix`, not `os`: posix is loaded by every interpreter's start-up, os is not by pyferry's,
# and hello must do no more work than `python3.11 -I -c "print('hi')"`.
import posix  # noqa: E402

if posix.environ.get(b"PYFERRY_BENCH_SMAPS") == b"1":
    print_smaps()
