"""The benchmark routes on spikard, each handler suspending once
(``await asyncio.sleep(0)``): every request takes the path of a handler that
does not finish in its first step — a real asyncio.Task on the loop, driven from
tokio. Measured beside spikard_app.py (docs/architecture.md)."""

import asyncio

import msgspec

from spikard import Spikard


class Item(msgspec.Struct):
    name: str
    price: float
    tags: list[str]


app = Spikard()


@app.get("/hello")
async def hello():
    await asyncio.sleep(0)
    return {"message": "Hello"}


@app.get("/items/{item_id:int}")
async def get_item(item_id: int, q: str | None = None):
    await asyncio.sleep(0)
    return {"item_id": item_id, "q": q}


@app.post("/items")
async def create_item(item: Item) -> Item:
    await asyncio.sleep(0)
    return item
