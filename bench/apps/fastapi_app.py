"""The benchmark routes on FastAPI, as its documentation writes them."""

import asyncio

from fastapi import FastAPI
from pydantic import BaseModel, Field


class Order(BaseModel):
    name: str = Field(min_length=1)
    price: float = Field(gt=0)
    quantity: int = Field(ge=1)


app = FastAPI()


class Item(BaseModel):
    name: str
    price: float
    tags: list[str]


class Address(BaseModel):
    street: str
    city: str
    postcode: str
    country: str


class Customer(BaseModel):
    name: str
    email: str
    address: Address


class Line(BaseModel):
    sku: str
    name: str
    quantity: int
    price_cents: int
    tags: list[str]
    options: dict[str, str]


class BulkOrder(BaseModel):
    id: str
    customer: Customer
    lines: list[Line]
    notes: str | None = None


@app.get("/hello")
async def hello():
    return {"message": "Hello"}


@app.get("/items/{item_id}")
async def get_item(item_id: int, q: str | None = None):
    return {"item_id": item_id, "q": q}


@app.post("/items")
async def create_item(item: Item) -> Item:
    return item


@app.post("/orders")
async def create_order(order: Order) -> Order:
    return order


@app.post("/orders/bulk")
async def create_bulk_order(order: BulkOrder):
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
