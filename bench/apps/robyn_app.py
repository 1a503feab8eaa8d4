"""The benchmark routes on Robyn: one process, one worker, on 127.0.0.1 at the
port in ``BENCH_PORT``.

Robyn validates pydantic body parameters itself (422 on failure) but nothing
else: the msgspec bodies are decoded in the handler, and a refused one is
answered 422 with the decoder's message (which names the field).
"""

import asyncio
import os

import msgspec
from pydantic import BaseModel, Field
from robyn import Config, Request, Response, Robyn

JSON = {"Content-Type": "application/json"}


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


def refused(error: msgspec.DecodeError) -> Response:
    return Response(422, JSON, msgspec.json.encode({"detail": str(error)}))


# Robyn reads its options from the command line, which the benchmark leaves
# empty; warnings only, as the other servers are run (--log-level warning).
config = Config()
config.log_level = "WARN"
app = Robyn(__file__, config=config)


@app.get("/hello")
async def hello():
    return {"message": "Hello"}


@app.get("/items/:item_id")
async def get_item(item_id: int, q: str | None = None):
    return {"item_id": item_id, "q": q}


@app.post("/items")
async def create_item(request: Request):
    try:
        item = msgspec.json.decode(request.body, type=Item)
    except msgspec.DecodeError as error:
        return refused(error)
    return Response(200, JSON, msgspec.json.encode(item))


@app.post("/orders")
async def create_order(order: Order):
    return order


@app.post("/orders/bulk")
async def create_bulk_order(request: Request):
    try:
        order = msgspec.json.decode(request.body, type=BulkOrder)
    except msgspec.DecodeError as error:
        return refused(error)
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


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=int(os.environ.get("BENCH_PORT", "8000")))
