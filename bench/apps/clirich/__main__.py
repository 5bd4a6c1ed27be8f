"""pyferry benchmark app `clirich`: a click command printing a rich table.

A CLI with several pure-Python dependencies (click, rich and rich's markdown-it-py, mdurl,
pygments): start-up is dominated by importing many small modules. The console has a fixed width,
no colour and ASCII borders, so the output is the same whatever the terminal and locale.
With PYFERRY_BENCH_SMAPS=1 it also prints a `SMAPS` line (see `print_smaps`) for bench/run.py.
"""

import os

import click
from rich import box
from rich.console import Console
from rich.table import Table


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


@click.command()
@click.option("--rows", default=6, show_default=True, help="How many rows to print.")
def squares(rows):
    """Prints a table of the first ROWS squares and cubes."""
    table = Table(box=box.ASCII)
    for heading in ("n", "n^2", "n^3"):
        table.add_column(heading, justify="right")
    for n in range(1, rows + 1):
        table.add_row(str(n), str(n * n), str(n ** 3))
    console = Console(width=40, color_system=None, force_terminal=False, force_jupyter=False)
    console.print(table)
    click.echo(f"{rows} rows")


if __name__ == "__main__":
    squares.main(args=[], prog_name="clirich", standalone_mode=False)
    if os.environ.get("PYFERRY_BENCH_SMAPS") == "1":
        print_smaps()
