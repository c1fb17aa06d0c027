"""Bastion with one trivial JSON route, ``GET /hello``, behind the full edge (for the benchmarks)."""

from __future__ import annotations

import msgspec
from litestar import get, post
from litestar.params import JSONBody

from bastion.app import create_app
from bastion.core.module import Module, ModuleParts


@get("/hello", sync_to_thread=False)
def hello() -> dict[str, str]:
    return {"hello": "world"}


class Msg(msgspec.Struct):
    role: str
    content: str


class Chat(msgspec.Struct):
    messages: list[Msg]
    model: str = "echo"
    stream: bool = False


class Out(msgspec.Struct):
    id: str
    content: str


@post("/chat", status_code=200)
async def chat(data: JSONBody[Chat]) -> Out:
    return Out(id="x", content=data.messages[-1].content)


def _bench(_ctx: object) -> ModuleParts:
    return ModuleParts(route_handlers=[hello, chat])


app = create_app(extra_modules=[Module(name="bench", build=_bench)])


def create() -> object:
    """Factory for ``bastion serve --app bastion_hello:create`` (the app is built once, on import)."""
    return app
