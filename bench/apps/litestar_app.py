"""The benchmark routes on Litestar, as its documentation writes them."""

import asyncio

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import ValidationException
from litestar.status_codes import HTTP_422_UNPROCESSABLE_ENTITY
from pydantic import BaseModel, Field


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


@get("/hello")
async def hello() -> dict[str, str]:
    return {"message": "Hello"}


@get("/items/{item_id:int}")
async def get_item(item_id: int, q: str | None = None) -> dict[str, int | str | None]:
    return {"item_id": item_id, "q": q}


@post("/items", status_code=200)
async def create_item(data: Item) -> Item:
    return data


@post("/orders", status_code=200)
async def create_order(data: Order) -> Order:
    return data


@post("/orders/bulk", status_code=200)
async def create_bulk_order(data: BulkOrder) -> dict[str, int | str]:
    return {
        "id": data.id,
        "lines": len(data.lines),
        "units": sum(line.quantity for line in data.lines),
        "total_cents": sum(line.quantity * line.price_cents for line in data.lines),
    }


@get("/sync", sync_to_thread=True)
def sync_hello() -> dict[str, str]:
    return {"message": "Hello from a thread"}


@get("/sleep")
async def sleep() -> dict[str, int]:
    await asyncio.sleep(0.001)
    return {"slept_ms": 1}


def validation_error(_: Request, exc: ValidationException) -> Response[dict[str, object]]:
    """Refused input is 422, as in the other frameworks (Litestar's default is 400)."""
    return Response(
        {"status_code": HTTP_422_UNPROCESSABLE_ENTITY, "detail": exc.detail, "extra": exc.extra},
        status_code=HTTP_422_UNPROCESSABLE_ENTITY,
    )


app = Litestar(
    route_handlers=[hello, get_item, create_item, create_order, create_bulk_order, sync_hello, sleep],
    exception_handlers={ValidationException: validation_error},
)
