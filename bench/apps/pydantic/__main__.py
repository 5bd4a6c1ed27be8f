"""pyferry benchmark app `pydantic`: validate 300 nested records with pydantic models.

pydantic's core is a native extension (pydantic_core), its models are built at import time:
start-up is import plus schema building plus a little validation. The output is a checksum
of the validated data and the number of records rejected, the same on every machine.
With PYFERRY_BENCH_SMAPS=1 it also prints a `SMAPS` line (see `print_smaps`) for bench/run.py.
"""

import os

import pydantic
from pydantic import BaseModel, Field, ValidationError


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


class Item(BaseModel):
    name: str = Field(min_length=1)
    quantity: int = Field(ge=1)
    unit_cents: int = Field(ge=0)
    tags: list[str] = []


class Order(BaseModel):
    id: int
    customer: str
    items: list[Item]


def raw_orders(count):
    """Plain dicts as they would come from JSON; every 10th order has an invalid quantity."""
    for i in range(count):
        yield {
            "id": str(i),  # coerced to int
            "customer": f"customer-{i % 17}",
            "items": [
                {"name": f"item-{j}", "quantity": 0 if i % 10 == 9 and j == 0 else j + 1,
                 "unit_cents": 100 * j + i % 7, "tags": ["a", "b"][: j % 3]}
                for j in range(4)
            ],
        }


valid, rejected = [], 0
for raw in raw_orders(300):
    try:
        valid.append(Order.model_validate(raw))
    except ValidationError:
        rejected += 1
total = sum(item.quantity * item.unit_cents for order in valid for item in order.items)
print(f"pydantic {pydantic.VERSION} orders {len(valid)} rejected {rejected} total {total}")

if os.environ.get("PYFERRY_BENCH_SMAPS") == "1":
    print_smaps()
