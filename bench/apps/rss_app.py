"""The app bench/rss.py drives: valid, invalid and raising requests."""

import msgspec

from spikard import Spikard

app = Spikard()


class Line(msgspec.Struct):
    sku: str
    qty: int


class Order(msgspec.Struct, forbid_unknown_fields=True):
    id: int
    lines: list[Line]


@app.get("/items/{item_id}")
async def item(item_id: int, q: str | None = None):
    return {"item_id": item_id, "q": q}


@app.get("/boom")
async def boom():
    raise RuntimeError("raised on purpose")


@app.post("/orders")
async def order(order: Order):
    return {"id": order.id, "lines": len(order.lines)}
