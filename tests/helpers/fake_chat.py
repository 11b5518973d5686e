"""A fake OpenAI-compatible chat/speech endpoint on 127.0.0.1 for the judge and caller tests.

``FakeChat.answer`` decides each reply: ``(body, attempt) -> str`` (the content) or a
``web.Response`` (an HTTP failure). It counts requests, the most in flight at once, and keeps
each request's body and Authorization header.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from tests.helpers import seam

SENTINEL_KEY = "sk-SENTINEL-7f3a9c1e5b"


class FakeChat:
    def __init__(self) -> None:
        self.answer: Callable[[dict[str, Any], int], str | web.Response] = lambda body, attempt: (
            json.dumps({"score": 4, "reason": "fine"})
        )
        self.delay_s = 0.0
        self.requests = 0
        self.speech_requests = 0
        self.no_speech = False  # True: /v1/audio/speech answers 404, as a chat-only service
        self.in_flight = 0
        self.max_in_flight = 0
        self.bodies: list[dict[str, Any]] = []
        self.auth: list[str] = []
        self.attempts: dict[str, int] = {}  # per request content: how many times it came
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> FakeChat:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/audio/speech", self._speech)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests += 1
        self.bodies.append(body)
        self.auth.append(request.headers.get("Authorization", ""))
        content = json.dumps(body["messages"], sort_keys=True)
        attempt = self.attempts.get(content, 0)
        self.attempts[content] = attempt + 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            answer = self.answer(body, attempt)
        finally:
            self.in_flight -= 1
        if isinstance(answer, web.Response):
            return answer
        return web.json_response(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": "stop",
                    }
                ],
            }
        )

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.speech_requests += 1
        self.auth.append(request.headers.get("Authorization", ""))
        if self.no_speech:
            return failure(404, "no such route", retry_after_ms=None)
        return web.Response(body=b"RIFF" + body["input"].encode(), content_type="audio/wav")


def failure(status: int, message: str, *, retry_after_ms: int | None = 1) -> web.Response:
    headers = {"retry-after-ms": str(retry_after_ms)} if retry_after_ms is not None else {}
    return web.json_response(
        {"error": {"message": message, "type": "error", "code": None}},
        status=status,
        headers=headers,
    )


@pytest.fixture
async def fake_chat() -> AsyncIterator[FakeChat]:
    server = await FakeChat().start()
    yield server
    await server.stop()


@pytest.fixture
def widget(fake_chat: FakeChat) -> Any:
    """A widget whose chat endpoint is ``fake_chat`` and whose page answers typed turns."""
    import httpx

    from realtime_widget import RealtimeWidget
    from tests.conftest import pretend_live
    from tests.helpers.page import Service
    from tests.helpers.service_page import ServicePage

    w = RealtimeWidget(api_key=SENTINEL_KEY, base_url=fake_chat.base_url)
    seam.use_service(w, httpx.MockTransport(Service()), key=SENTINEL_KEY)
    ServicePage(w)  # answers each typed turn with "You said: <the turn>"
    pretend_live(w)
    yield w
    w.close()
