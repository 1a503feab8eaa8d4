"""The foundation routes for instruction counting (bench/instructions/run.sh); it
uses only what the foundation build already served, so older builds can run it."""

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


@app.post("/struct")
async def struct(item: Item) -> Item:
    return item
