"""The benchmark routes on spikard (full asyncio semantics, as always)."""

import msgspec

from spikard import Spikard


class Item(msgspec.Struct):
    name: str
    price: float
    tags: list[str]


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
