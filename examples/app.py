"""A small spikard app: `spikard run examples/app.py`, then try

    curl localhost:8000/hello
    curl 'localhost:8000/items/1?q=blue&limit=5'
    curl -X POST localhost:8000/items -H 'content-type: application/json' \\
         -d '{"name": "widget", "price": 9.5, "tags": ["blue"]}'
    curl -X POST localhost:8000/items -H 'content-type: application/json' -d '{"name": 1}'  # 422
    curl localhost:8000/items/99                                                            # 404
    curl -i localhost:8000/whoami -b 'session=abc'
"""

import asyncio
import contextlib
import threading

import msgspec

from spikard import HTTPException, Query, Request, Response, Router, Spikard, status


class Item(msgspec.Struct):
    name: str
    price: float
    tags: list[str] = []


@contextlib.asynccontextmanager
async def lifespan(app: Spikard):
    # Made on the loop the handlers run on, so they can use it.
    app.state.lock = asyncio.Lock()
    app.state.items = {}
    yield
    app.state.items.clear()


app = Spikard(lifespan=lifespan)
items = Router(prefix="/items", tags=["items"])


@app.get("/hello")
async def hello():
    return {"message": "Hello"}


@items.get("/{item_id:int}")
async def get_item(item_id: int, q: str | None = None, limit: int = Query(10, ge=1, le=100)) -> Item:
    item = app.state.items.get(item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No item {item_id}")
    return item


@items.post("", status_code=status.HTTP_201_CREATED)
async def create_item(item: Item, response: Response) -> Item:
    async with app.state.lock:
        item_id = len(app.state.items) + 1
        app.state.items[item_id] = item
    response.headers["location"] = f"/items/{item_id}"
    return item


app.include_router(items)


@app.get("/whoami")
async def whoami(request: Request):
    return {
        "client": request.client.host if request.client else None,
        "session": request.cookies.get("session"),
        "user_agent": request.headers.get("user-agent"),
    }


@app.get("/slow")
async def slow(seconds: float = Query(0.5, ge=0, le=5)):
    async with asyncio.timeout(2):
        await asyncio.sleep(seconds)
    return {"slept": seconds}


@app.get("/sync")
def blocking():
    # Plain `def` handlers run in a thread pool, never on the event loop.
    return {"thread": threading.current_thread().name}
