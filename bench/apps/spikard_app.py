"""The benchmark routes on spikard (full asyncio semantics, as always)."""

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
# the foundation routes; pydantic bodies came later.
if not os.environ.get("BENCH_FOUNDATION_ROUTES_ONLY"):

    @app.post("/orders")
    async def create_order(order: Order) -> Order:
        return order
