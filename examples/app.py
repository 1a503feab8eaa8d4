"""A small spikard app: `spikard run examples/app.py`, then try

    curl localhost:8000/hello
    curl 'localhost:8000/items/3?q=blue&limit=5'
    curl -X POST localhost:8000/items -H 'content-type: application/json' \\
         -d '{"name": "widget", "price": 9.5, "tags": ["blue"]}'
    curl -X POST localhost:8000/items -H 'content-type: application/json' -d '{"name": 1}'  # 422
"""

import asyncio

import msgspec

from spikard import Header, Query, Spikard


class Item(msgspec.Struct):
    name: str
    price: float
    tags: list[str] = []


app = Spikard()
items: dict[int, Item] = {}


@app.get("/hello")
async def hello():
    return {"message": "Hello"}


@app.get("/items/{item_id:int}")
async def get_item(item_id: int, q: str | None = None, limit: int = Query(10, ge=1, le=100)):
    return {"item_id": item_id, "q": q, "limit": limit, "item": items.get(item_id)}


@app.post("/items", status_code=201)
async def create_item(item: Item) -> Item:
    items[len(items) + 1] = item
    return item


@app.get("/slow")
async def slow(seconds: float = Query(0.5, ge=0, le=5), user_agent: str | None = Header(None)):
    async with asyncio.timeout(2):
        await asyncio.sleep(seconds)
    return {"slept": seconds, "user_agent": user_agent}


@app.get("/sync")
def blocking():
    # Plain `def` handlers run in a thread pool, never on the event loop.
    return {"thread": __import__("threading").current_thread().name}
