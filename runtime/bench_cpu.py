"""A CPU-bound pure-Python workload (dict, str, re and json work, about 1 s) and a paired
comparison of two interpreters on it.

    python bench_cpu.py                      run the workload once, print its seconds
    python3 bench_cpu.py --compare A B [--pairs 15]
                                             run A and B alternately (A first in even pairs,
                                             B first in odd ones) and print the median ratio

Only the workload's own time is compared (measured inside the process with perf_counter), so
interpreter start-up is not part of it. Used by docs/runtime.md's speed figures; `make bench`
can reuse it.
"""

import json
import re
import statistics
import subprocess
import sys
import time

WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi "
         "rho sigma tau upsilon phi chi psi omega").split()
PATTERN = re.compile(r"(\w+)-(\d+)")


def workload(rounds: int = 440) -> int:
    checksum = 0
    for round_number in range(rounds):
        counts = {}
        parts = []
        for index in range(2000):
            word = WORDS[(index * 7 + round_number) % len(WORDS)]
            key = f"{word}-{index % 97}"
            counts[key] = counts.get(key, 0) + 1
            parts.append(key.upper() if index % 3 == 0 else key)
        text = " ".join(parts)
        for match in PATTERN.finditer(text):
            checksum += int(match.group(2))
        document = json.dumps({"round": round_number, "counts": counts,
                               "words": sorted(set(parts))[:50]})
        decoded = json.loads(document)
        checksum += len(decoded["counts"]) + len(text.split())
        checksum += sum(len(word) for word in text.replace("-", " ").lower().split()
                        if word.isalpha())
    return checksum


def run_once() -> None:
    started = time.perf_counter()
    checksum = workload()
    elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed, "checksum": checksum}))


def measure(interpreter: str) -> float:
    output = subprocess.run([interpreter, "-I", __file__], check=True, capture_output=True,
                            text=True).stdout
    return json.loads(output)["seconds"]


def compare(first: str, second: str, pairs: int) -> None:
    ratios, first_times, second_times = [], [], []
    measure(first), measure(second)  # warm the page cache
    for pair in range(pairs):
        if pair % 2 == 0:
            a, b = measure(first), measure(second)
        else:
            b, a = measure(second), measure(first)
        first_times.append(a)
        second_times.append(b)
        ratios.append(a / b)
    print(json.dumps({
        "first": first, "second": second, "pairs": pairs,
        "first_median_seconds": round(statistics.median(first_times), 4),
        "second_median_seconds": round(statistics.median(second_times), 4),
        "median_ratio_first_over_second": round(statistics.median(ratios), 4),
        "ratio_range": [round(min(ratios), 4), round(max(ratios), 4)],
    }, indent=2))


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--compare":
        pairs = int(sys.argv[sys.argv.index("--pairs") + 1]) if "--pairs" in sys.argv else 15
        compare(sys.argv[2], sys.argv[3], pairs)
    else:
        run_once()
