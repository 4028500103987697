"""The reader's web page: FastAPI routes rendering Jinja2 templates, one clip at a time.

Why FastAPI/Starlette with plain HTML forms rather than Gradio: the page must be blind and durable.
Gradio serves media as ``/file=<cache path>/<original name>`` (the file name leaks), keeps session
state in the server process (lost with it), loads its front end from a CDN and sends analytics by
default (the hospital network may be closed), and its queue/websocket protocol is hard to test
end to end. Here every answer is an ordinary form POST committed to SQLite before the
``303 See Other`` that moves the browser on (post/redirect/get, so a reload never resubmits), the
only names the browser sees are random item tokens, the page works without JavaScript, and
Starlette's ``TestClient`` and a real browser can drive it.

Routes: ``GET /`` (name form) · ``POST /start`` · ``GET /next`` (the next clip, or the end) ·
``POST /answer`` · ``GET /clip/<token>.mp4`` · ``POST /leave``. None of them reads the truth table
or another reader's answers.
"""
from __future__ import annotations

import time
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from medsora.reader_study.db import NAME_MAX, Reader, ReaderStore
from medsora.reader_study.questions import validate_answers

__all__ = ["create_app", "COOKIE"]

COOKIE = "medsora_reader"
_TEMPLATES = Path(__file__).with_name("templates")
_NO_STORE = {"Cache-Control": "no-store"}


def create_app(store: ReaderStore, clips: Path) -> FastAPI:
    """The application serving ``store``'s study; ``clips`` holds ``<token>.mp4`` (see ``export_videos``)."""
    app = FastAPI(title="MedSora reader study", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(_TEMPLATES))

    def page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        context.setdefault("title", store.title)
        return templates.TemplateResponse(request, name, context, status_code=status, headers=_NO_STORE)

    def current(request: Request) -> Reader | None:
        return store.reader_by_token(request.cookies.get(COOKIE))

    def to(path: str) -> RedirectResponse:
        return RedirectResponse(path, status_code=303, headers=_NO_STORE)

    def item_page(request: Request, reader: Reader, status: int = 200, errors=None, values=None) -> Response:
        """The reader's next clip; with ``errors``, the clip of ``values["item"]`` again with the messages."""
        item, done, total = store.progress(reader)
        if item is None:
            return page(request, "done.html", reader=reader, total=total)
        token = values["item"] if errors else item.token
        return page(request, "item.html", status, reader=reader, item=token, number=done + 1, done=done,
                    total=total, questions=store.questions, errors=errors or {}, values=values or {},
                    shown=f"{time.time():.3f}")

    @app.get("/", response_class=HTMLResponse)
    def start_page(request: Request) -> Response:
        if current(request):
            return to("/next")
        return page(request, "start.html", name_max=NAME_MAX, error=None)

    @app.post("/start")
    async def start(request: Request) -> Response:
        name = str((await request.form()).get("name") or "")
        try:
            reader = await run_in_threadpool(store.reader, name)
        except ValueError as err:
            return page(request, "start.html", 422, name_max=NAME_MAX, error=f"Please enter {err}.")
        response = to("/next")
        response.set_cookie(COOKIE, reader.token, max_age=180 * 24 * 3600, httponly=True, samesite="strict")
        return response

    @app.get("/next", response_class=HTMLResponse)
    def next_item(request: Request) -> Response:
        reader = current(request)
        return item_page(request, reader) if reader else to("/")

    @app.post("/answer")
    async def answer(request: Request) -> Response:
        reader = await run_in_threadpool(current, request)
        if reader is None:
            return to("/")
        form = {k: str(v) for k, v in (await request.form()).items()}
        answers, errors = validate_answers(store.questions, form)
        item = form.get("item", "")
        if item not in store.ids:
            return to("/next")  # a stale or forged page: show the reader's real next clip
        if errors and not await run_in_threadpool(store.has_answer, reader, item):
            return await run_in_threadpool(item_page, request, reader, 422, errors, form)
        try:
            seconds = time.time() - float(form.get("shown", ""))
        except ValueError:
            seconds = None
        seconds = seconds if seconds is not None and 0 <= seconds < 86400 else None
        if not errors:
            await run_in_threadpool(store.save_answer, reader, item, answers, seconds)  # committed before the 303
        return to("/next")  # saved, or an invalid resubmission of a clip already answered

    @app.get("/clip/{name}")
    def clip(request: Request, name: str) -> Response:
        token = name.removesuffix(".mp4")
        if current(request) is None or token not in store.ids or name != f"{token}.mp4":
            return Response(status_code=404)
        return FileResponse(clips / name, media_type="video/mp4", headers={"Cache-Control": "private, max-age=86400"})

    @app.post("/leave")
    def leave() -> Response:
        response = to("/")
        response.delete_cookie(COOKIE)
        return response

    return app
