"""The web page: ``python dcgan.py serve`` answers on 127.0.0.1 with a page where anyone
can ask for faces by clicking (page.html), and with the four JSON calls it makes.

* ``Page``: a loaded checkpoint behind one lock, and what each call answers: ``/faces``
  (a request's faces), ``/flip`` (the same faces with one attribute switched) and
  ``/interpolate`` (the faces becoming another seed's or another request's). Every
  body is checked against its schema (``Query`` and its kin) and every spec is read by
  attributes.parse_spec, the command line's parser; a bad call gets status 400 and
  ``{"error": "<one line>"}``, which the page shows, and the server goes on.
* ``start``: the standard library's ThreadingHTTPServer on loopback for a ``Page``.

Why the standard library and not FastAPI or Gradio: the page needs four JSON calls and
one HTML file, and this way nothing more is installed, nothing is fetched (the page
carries its script and style; no CDN), and the server is up as soon as the checkpoint
has loaded. Threads answer concurrent calls; the lock lets one call use the model at
a time, since a Keras model is not safe to call from two threads at once. It is a
local demo server, not one to put on a network: it binds 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import errno
import io
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import generation
import schemas
from attributes import GROUPS, MAX_STRENGTH, NUM_ATTRIBUTES, parse_spec
from cli import SEED_LIMIT, CommandError, UsageError
from pixels import to_uint8

PAGE = Path(__file__).with_name("page.html")
HOST = "127.0.0.1"
MAX_COUNT = 32  # faces per call: a grid a page shows, and a call that answers in seconds
MAX_FRAMES = 16
MAX_BODY = 16_384  # bytes; the largest honest call is under 3 kB


class Query(BaseModel):
    """The body of ``/faces``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    spec: str = Field("", max_length=2_000)
    seed: int = Field(0, ge=0, lt=SEED_LIMIT)
    count: int = Field(8, ge=1, le=MAX_COUNT)


class FlipQuery(Query):
    """The body of ``/flip``: the faces of ``/faces`` with ``attribute`` switched."""

    attribute: str = Field(max_length=100)


class InterpolateQuery(Query):
    """The body of ``/interpolate``: ``target`` is a seed (digits) or a spec."""

    target: str = Field(min_length=1, max_length=2_000)
    frames: int = Field(generation.FRAMES, ge=2, le=MAX_FRAMES)


class CallError(Exception):
    """A call the page cannot answer; the message says why, in one line."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


def read_query(body: bytes, schema: type[Query]) -> Query:
    """The call's body as ``schema``, or CallError naming the field and what is wrong."""
    try:
        return schema.model_validate_json(body)
    except ValidationError as error:
        if error.errors()[0]["type"] == "json_invalid":
            raise CallError("the body is not JSON") from None
        raise CallError(schemas.describe(error)) from None


class Page:
    """What the page's calls answer, from one loaded model used by one call at a time."""

    def __init__(self, model: generation.FaceModel) -> None:
        self.model, self.lock = model, threading.Lock()
        self.routes = {
            "/faces": (Query, self.faces),
            "/flip": (FlipQuery, self.flip),
            "/interpolate": (InterpolateQuery, self.interpolate),
        }

    def info(self) -> dict:
        return {
            "source": self.model.source,
            "epoch": self.model.epoch,
            "size": self.model.shape[0],
            "groups": GROUPS,
            "max_strength": MAX_STRENGTH,
            "max_count": MAX_COUNT,
            "max_frames": MAX_FRAMES,
        }

    def answer(self, path: str, body: bytes) -> dict:
        """The JSON reply to a POST of ``body`` to ``path``, or CallError."""
        if path not in self.routes:
            raise CallError(
                f"no call {path}; the page uses {', '.join(self.routes)}", HTTPStatus.NOT_FOUND
            )
        schema, method = self.routes[path]
        query = read_query(body, schema)
        try:
            with self.lock:
                request = generation.Request(self.model, query.spec)
                strip = method(request, query)
        except CommandError as error:  # a spec the parser refused
            raise CallError(str(error)) from None
        return reply(strip, request.note)

    def faces(self, request: generation.Request, query: Query) -> generation.Strip:
        images = request.faces(query.count, query.seed)[None]
        return generation.Strip(images, request.spec, ["as asked"])

    def flip(self, request: generation.Request, query: FlipQuery) -> generation.Strip:
        names = list(parse_spec(query.attribute))
        if len(names) != 1:
            raise CallError(f"attribute: give one attribute to switch, not {query.attribute!r}")
        return generation.flips(request, names, query.count, query.seed)

    def interpolate(self, request: generation.Request, query: InterpolateQuery) -> generation.Strip:
        return generation.interpolation(
            request, query.target, query.count, query.seed, query.frames
        )


def reply(strip: generation.Strip, note: str | None) -> dict:
    """A strip as JSON: ``faces`` holds, for each face, a PNG data URL per column."""
    pixels = to_uint8(strip.images)
    return {
        "title": strip.title,
        "note": note,
        "columns": strip.headings,
        "faces": [
            [png_url(pixels[c, f]) for c in range(len(pixels))] for f in range(pixels.shape[1])
        ],
    }


def png_url(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class Handler(BaseHTTPRequestHandler):
    """HTTP for a ``Page`` (set on a subclass by ``start``)."""

    page: Page
    server_version = "facegan"
    timeout = 30  # seconds a silent client may hold its thread

    def do_GET(self) -> None:
        if self.path in ("/", "/index.html"):
            self.send(HTTPStatus.OK, PAGE.read_bytes(), "text/html; charset=utf-8")
        elif self.path == "/info":
            self.send_json(HTTPStatus.OK, self.page.info())
        else:
            self.send_json(HTTPStatus.NOT_FOUND, {"error": f"no page {self.path}"})

    def do_POST(self) -> None:
        try:
            reply = self.page.answer(self.path, self.body())
            self.send_json(HTTPStatus.OK, reply)
        except CallError as error:
            self.send_json(error.status, {"error": str(error)})

    def body(self) -> bytes:
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            raise CallError("the call has no Content-Length", HTTPStatus.LENGTH_REQUIRED)
        if int(length) > MAX_BODY:
            self.close_connection = True  # the unread body must not be taken for a request
            raise CallError(
                f"the body is over {MAX_BODY} bytes", HTTPStatus.REQUEST_ENTITY_TOO_LARGE
            )
        return self.rfile.read(int(length))

    def send_json(self, status: HTTPStatus, content: dict) -> None:
        self.send(status, json.dumps(content).encode(), "application/json")

    def send(self, status: HTTPStatus, content: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(content)


def start(page: Page, port: int, log: bool = True) -> ThreadingHTTPServer:
    """A server for ``page`` on 127.0.0.1:``port`` (0: any free port), not yet serving;
    it logs a line per call on stderr unless not ``log``."""
    fields = {"page": page} | ({} if log else {"log_message": lambda *args: None})
    handler = type("PageHandler", (Handler,), fields)
    try:
        server = ThreadingHTTPServer((HOST, port), handler)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise UsageError(
                f"--port {port}: in use; choose another, or 0 for a free one"
            ) from None
        raise
    server.daemon_threads = True
    return server


def serve(checkpoint: str | Path | None, port: int, raw: bool = False) -> None:
    """Open ``checkpoint`` (generation.FaceModel.open) and serve its page until Ctrl-C."""
    model = generation.FaceModel.open(checkpoint, raw)
    model.images(
        np.zeros((1, NUM_ATTRIBUTES + model.noise_dim), np.float32)
    )  # the first call traces
    server = start(Page(model), port)
    host, port = server.server_address[:2]
    print(f"serving {model.source} at http://{host}:{port}/ (Ctrl-C stops)", flush=True)
    with server:
        server.serve_forever()
