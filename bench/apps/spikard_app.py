"""The benchmark routes on spikard (full asyncio semantics, as always)."""

import asyncio
import os

import msgspec
from pydantic import BaseModel, Field

from spikard import Spikard


class Item(msgspec.Struct):
    name: str
    price: float
    tags: list[str]


class Order(BaseModel):
    name: str = Field(min_length=1)
    price: float = Field(gt=0)
    quantity: int = Field(ge=1)


class Address(msgspec.Struct):
    street: str
    city: str
    postcode: str
    country: str


class Customer(msgspec.Struct):
    name: str
    email: str
    address: Address


class Line(msgspec.Struct):
    sku: str
    name: str
    quantity: int
    price_cents: int
    tags: list[str]
    options: dict[str, str]


class BulkOrder(msgspec.Struct):
    id: str
    customer: Customer
    lines: list[Line]
    notes: str | None = None


app = Spikard()


@app.get("/hello")
async def hello():
    return {"message": "Hello"}


@app.get("/items/{item_id:int}")
async def get_item(item_id: int, q: str | None = None):
    return {"item_id": item_id, "q": q}


@app.post("/items")
async def create_item(item: Item) -> Item:
    return item


# An earlier build measured beside this one (bench/run.py --baseline) serves only
# the foundation routes; pydantic bodies, the nested body, sync handlers and the
# sleeping handler came later.
if not os.environ.get("BENCH_FOUNDATION_ROUTES_ONLY"):

    @app.post("/orders")
    async def create_order(order: Order) -> Order:
        return order

    @app.post("/orders/bulk")
    async def create_bulk_order(order: BulkOrder):
        return {
            "id": order.id,
            "lines": len(order.lines),
            "units": sum(line.quantity for line in order.lines),
            "total_cents": sum(line.quantity * line.price_cents for line in order.lines),
        }

    @app.get("/sync")
    def sync_hello():
        return {"message": "Hello from a thread"}

    @app.get("/sleep")
    async def sleep():
        await asyncio.sleep(0.001)
        return {"slept_ms": 1}
