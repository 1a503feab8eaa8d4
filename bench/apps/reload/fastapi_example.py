"""examples/app.py ported to FastAPI, for bench/reload.py: the same routes, a
lifespan, a router, a body model; plus /version, which each save changes."""

import asyncio
import contextlib
import threading

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, Response, status
from pydantic import BaseModel

VERSION = 0


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.lock = asyncio.Lock()
    app.state.items = {}
    yield
    app.state.items.clear()


app = FastAPI(lifespan=lifespan)
items = APIRouter(prefix="/items", tags=["items"])


@app.get("/version")
async def version():
    return {"version": VERSION}


@app.get("/hello")
async def hello():
    return {"message": "Hello"}


@items.get("/{item_id}")
async def get_item(item_id: int, q: str | None = None, limit: int = Query(10, ge=1, le=100)) -> Item:
    item = app.state.items.get(item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No item {item_id}")
    return item


@items.post("", status_code=status.HTTP_201_CREATED)
async def create_item(item: Item) -> dict:
    async with app.state.lock:
        item_id = len(app.state.items) + 1
        app.state.items[item_id] = item
    return {"id": item_id, **item.model_dump()}


@app.get("/whoami")
async def whoami(request: Request, response: Response):
    response.set_cookie("seen", "1")
    return {"client": request.client.host if request.client else None, "session": request.cookies.get("session")}


@app.get("/thread")
def thread():
    return {"thread": threading.current_thread().name}


app.include_router(items)
