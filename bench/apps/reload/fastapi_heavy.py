"""The heavy app for bench/reload.py, FastAPI's version (uvicorn, fastapi dev, granian)."""

import httpx
import jinja2
import sqlalchemy
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

VERSION = 0


class Base(DeclarativeBase):
    pass


class ItemRow(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


class Item(BaseModel):
    name: str
    price: float


engine = sqlalchemy.create_engine("sqlite://")
page = jinja2.Template("<p>{{ name }}</p>")
client_timeout = httpx.Timeout(5.0)
app = FastAPI()


@app.get("/version")
async def version():
    return {"version": VERSION}


@app.post("/items")
async def create(item: Item):
    return {"name": item.name, "html": page.render(name=item.name)}
