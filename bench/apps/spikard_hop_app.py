"""The benchmark routes on spikard, but every handler body runs on an asyncio loop
in another thread, reached with ``run_coroutine_threadsafe``: one cross-thread
round trip per request, as bridges that hand each coroutine to a loop thread pay.
Measured beside spikard_app.py to show what stepping coroutines in place saves
(docs/architecture.md); not a way to deploy anything."""

import asyncio
import threading

import msgspec

from spikard import Spikard

_loop = asyncio.new_event_loop()
threading.Thread(target=_loop.run_forever, name="hop-loop", daemon=True).start()


async def _hop(coro):
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, _loop))


class Item(msgspec.Struct):
    name: str
    price: float
    tags: list[str]


app = Spikard()


async def _hello():
    return {"message": "Hello"}


async def _item(item_id, q):
    return {"item_id": item_id, "q": q}


async def _create(item):
    return item


@app.get("/hello")
async def hello():
    return await _hop(_hello())


@app.get("/items/{item_id:int}")
async def get_item(item_id: int, q: str | None = None):
    return await _hop(_item(item_id, q))


@app.post("/items")
async def create_item(item: Item) -> Item:
    return await _hop(_create(item))
