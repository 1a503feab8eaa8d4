"""The benchmark routes on FastAPI, as its documentation writes them."""

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
