"""The kernel's client for OpenAI-compatible chat and speech endpoints (judges and callers).

Built on the ``openai`` SDK's ``AsyncOpenAI`` (the ``evaluate`` extra), pointed at
``<base_url>/v1``: Inworld's router with the widget's key, the emulator offline, or any
OpenAI-compatible service (OpenAI, vLLM, Ollama). Requests run concurrently under a bound,
the SDK retries 429 and 5xx answers with backoff (honouring ``Retry-After``), and answers are
cached on disk by content, so the same request twice sends nothing. The key is held as a
:class:`~realtime_widget._secrets.Secret` and scrubbed from every text this module returns.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import RealtimeWidgetError
from .._secrets import Scrubber, Secret, check_key

__all__ = [
    "DEFAULT_CACHE_DIR",
    "ChatReply",
    "ModelClient",
    "ModelEndpoint",
    "ModelError",
    "first_json_object",
    "pick_endpoint",
]

EXTRA_HINT = (
    'Judges and simulated callers need the openai package: pip install "realtime-widget[evaluate]"'
)
DEFAULT_CACHE_DIR = Path("~/.cache/realtime-widget/judge")
CACHE_ENV = "REALTIME_WIDGET_CACHE"  # overrides the default cache directory
SPEECH_FORMATS = ("wav", "pcm", "mp3", "opus", "aac", "flac")
_CACHE_FORMAT = 1
_ERROR_CHARS = 400  # an error row keeps the service's first words, not a whole HTML page


def _openai() -> Any:
    try:
        import openai
    except ImportError:
        raise ImportError(EXTRA_HINT) from None
    return openai


class ModelError(RealtimeWidgetError):
    """A failed model request, its message scrubbed of the key.

    Raised when a simulated caller's speech request fails (HTTP error, timeout, unreachable
    endpoint): a caller cannot go on without its audio. A judge's failures are not raised: they
    are the judged rows' ``error``.
    """


class ModelEndpoint:
    """Where model calls go: a service's root URL, its key and how the key is sent.

    ``w.model_endpoint()`` hands judges and callers the widget's own service this way: the key
    is a :class:`~realtime_widget._secrets.Secret`, so it never shows in a repr, a row or an
    export, and the endpoint is never a trait. An endpoint is not pickled or saved (it holds a
    key); copying one gives the same object.

    Args:
        base_url: The service's root URL (``https://api.inworld.ai``, ``emu.base_url``, any
            OpenAI-compatible service); requests go to ``<base_url>/v1``. A trailing ``/`` is
            dropped.
        api_key: The key sent with every request (a ``str``, or a ``Secret``).
        auth_scheme: ``"Bearer"`` (the OpenAI form) or ``"Basic"`` (``Authorization: Basic
            <key>``, Inworld's form).

    Raises:
        ValueError: ``base_url`` is not an http(s) URL, or ``auth_scheme`` is neither
            ``"Bearer"`` nor ``"Basic"``.

    Attributes:
        base_url: The service's root URL, without a trailing ``/``.
        auth_scheme: How the key is sent: ``"Bearer"`` or ``"Basic"``.

    Example:
        >>> from realtime_widget.evaluate import ModelEndpoint
        >>> ModelEndpoint("https://api.openai.com/", "sk-...")
        ModelEndpoint(base_url='https://api.openai.com', key=set, auth_scheme='Bearer')
        >>> endpoint = w.model_endpoint()  # a widget's own service and key
    """

    __slots__ = ("_key", "auth_scheme", "base_url")

    def __init__(
        self, base_url: str, api_key: str | Secret, *, auth_scheme: str = "Bearer"
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        if auth_scheme not in ("Bearer", "Basic"):
            raise ValueError(f"auth_scheme must be 'Bearer' or 'Basic', not {auth_scheme!r}")
        self.base_url = base_url.rstrip("/")
        self._key = api_key if isinstance(api_key, Secret) else Secret(check_key(api_key or ""))
        self.auth_scheme = auth_scheme

    @property
    def has_key(self) -> bool:
        """Whether a non-empty key was given."""
        return bool(self._key)

    def client(
        self, *, concurrency: int = 8, cache: bool | str | os.PathLike[str] = True
    ) -> ModelClient:
        """A client for this endpoint's chat completions and speech.

        The client runs the requests of a judge or a caller: concurrently under a bound, retried
        on 429 and 5xx answers with backoff, and cached on disk by content, so the same request
        twice sends nothing. Needs the ``evaluate`` extra (the ``openai`` package).

        Args:
            concurrency: Requests in flight at most (an integer >= 1).
            cache: True (``~/.cache/realtime-widget/judge/``, or
                ``$REALTIME_WIDGET_CACHE/judge``), a directory, or False for no cache.

        Returns:
            A ``ModelClient``: ``await client.chat_json(messages, model=...)`` asks for one JSON
            object, ``await client.speech(text, voice=..., model=...)`` for audio bytes;
            ``client.requests`` counts what was sent (not cache hits).

        Example:
            >>> import os
            >>> endpoint = ModelEndpoint("https://api.openai.com", os.environ["OPENAI_API_KEY"])
            >>> client = endpoint.client(concurrency=4, cache=False)
            >>> reply = await client.chat_json(
            ...     [{"role": "user", "content": 'Answer with the JSON {"ok": true}'}],
            ...     model="gpt-4.1-mini",
            ... )
            >>> reply.data
            {'ok': True}
        """
        return ModelClient(
            self.base_url,
            self._key,
            concurrency=concurrency,
            cache=cache,
            auth_scheme=self.auth_scheme,
        )

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("a ModelEndpoint holds a key: it is not pickled or saved")

    def __copy__(self) -> ModelEndpoint:
        return self

    def __deepcopy__(self, memo: Any) -> ModelEndpoint:
        return self

    def __repr__(self) -> str:
        key = "set" if self._key else "none"
        return (
            f"ModelEndpoint(base_url={self.base_url!r}, key={key}, "
            f"auth_scheme={self.auth_scheme!r})"
        )


def pick_endpoint(
    who: str,
    *choices: tuple[str | None, str | Secret | None],
    default: ModelEndpoint | None = None,
) -> ModelEndpoint:
    """The first of ``choices`` that names a URL, else ``default``.

    ``choices`` are ``(base_url, api_key)`` pairs, most specific first. A URL must come with its
    own key: the widget's key is only ever sent to the widget's own service.
    """
    for url, key in choices:
        if url and not key:
            raise ValueError(
                f"{who}: base_url={url!r} was given without its api_key; pass api_key= too (the "
                "widget's key is sent only to the widget's own service)"
            )
        if key and not url:
            raise ValueError(
                f"{who}: an api_key was given without its base_url; pass base_url= too "
                "(e.g. 'https://api.openai.com' or the emulator's emu.base_url)"
            )
        if url and key:
            return ModelEndpoint(url, key if isinstance(key, Secret) else Secret(check_key(key)))
    if default is None or not default.has_key:
        raise ValueError(
            f"{who} has no endpoint to ask: pass base_url= and api_key= (any OpenAI-compatible "
            "service, or the emulator's emu.base_url / emu.api_key), or use the runs of a live "
            "widget, whose service and key are used"
        )
    return default


@dataclass(frozen=True)
class ChatReply:
    """One chat completion: its text, the JSON object read from it (``data``), and how it went.

    ``latency_ms`` is the model's time for this answer as measured when it was asked (a cached
    reply keeps it; ``cached`` says it was not asked again). ``error`` is set, and ``data`` is
    None, when the request failed or its text held no JSON object.
    """

    text: str | None
    data: dict[str, Any] | None
    model: str
    cached: bool
    latency_ms: float | None
    error: str | None = None
    structured: bool = False  # sent with a json_schema response_format the endpoint accepted


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text``.

    The whole text, a fenced block, or the first ``{...}`` that parses (models often wrap their JSON
    in prose or a code fence).
    """
    text = text.strip()
    try:
        value = json.loads(text)
        if isinstance(value, dict):
            return value
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _cache_dir(cache: bool | str | os.PathLike[str]) -> Path | None:
    if cache is False:
        return None
    if cache is True:
        root = os.environ.get(CACHE_ENV)
        return Path(root).expanduser() / "judge" if root else DEFAULT_CACHE_DIR.expanduser()
    return Path(cache).expanduser()


def _wants_plain(exc: Any) -> bool:
    """True when a 400 says the endpoint does not take a json_schema response_format."""
    words = str(getattr(exc, "message", "") or exc).lower()
    return any(w in words for w in ("response_format", "json_schema", "structured"))


class ModelClient:
    """Chat completions and speech from one OpenAI-compatible endpoint.

    ``base_url`` is the service's root (``https://api.inworld.ai``, ``emu.base_url``); the SDK
    is given ``<base_url>/v1``. ``concurrency`` bounds the requests in flight; ``max_retries``
    and ``timeout`` go to the SDK (it retries 429 and 5xx with exponential backoff). ``cache``:
    True (``~/.cache/realtime-widget/judge/``, or ``$REALTIME_WIDGET_CACHE/judge``), a
    directory, or False. ``auth_scheme="Basic"`` sends ``Authorization: Basic <key>`` (Inworld's
    form) instead of the SDK's Bearer. ``requests`` counts what was sent (not cache hits).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | Secret,
        *,
        concurrency: int = 8,
        cache: bool | str | os.PathLike[str] = True,
        max_retries: int = 3,
        timeout: float = 60.0,
        auth_scheme: str = "Bearer",
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be an integer >= 1, not {concurrency!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, not {max_retries!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, not {timeout!r}")
        if auth_scheme not in ("Bearer", "Basic"):
            raise ValueError(f"auth_scheme must be 'Bearer' or 'Basic', not {auth_scheme!r}")
        key = api_key if isinstance(api_key, Secret) else Secret(check_key(api_key or ""))
        if not key:
            raise ValueError("api_key is empty: pass the service's key (or the emulator's)")
        self.base_url = base_url.rstrip("/")
        self._key = key
        self.concurrency = concurrency
        self.cache_dir = _cache_dir(cache)
        self.max_retries = max_retries
        self.timeout = timeout
        self.auth_scheme = auth_scheme
        self.scrub = Scrubber(lambda: [self._key.reveal()])
        self.requests = 0  # sent to the endpoint (each retry is the SDK's, not counted again)
        self.cache_hits = 0
        self._structured = True  # until the endpoint refuses a json_schema response_format
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sdk: Any = None
        self._gate: asyncio.Semaphore | None = None
        self._inflight: dict[str, asyncio.Future[ChatReply]] = {}
        _openai()  # a missing extra is said now, not at the first request

    def __repr__(self) -> str:
        cache = str(self.cache_dir) if self.cache_dir else "off"
        return (
            f"ModelClient(base_url={self.base_url!r}, concurrency={self.concurrency}, "
            f"cache={cache!r}, requests={self.requests}, cache_hits={self.cache_hits})"
        )

    # --- the SDK, one per event loop -----------------------------------------------------
    def _client(self) -> tuple[Any, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._sdk is None or self._gate is None:
            openai = _openai()
            headers = (
                {"Authorization": f"Basic {self._key.reveal()}"}
                if self.auth_scheme == "Basic"
                else None
            )
            self._sdk = openai.AsyncOpenAI(
                base_url=f"{self.base_url}/v1",
                api_key=self._key.reveal(),
                max_retries=self.max_retries,
                timeout=self.timeout,
                default_headers=headers,
            )
            self._gate = asyncio.Semaphore(self.concurrency)
            self._inflight = {}
            self._loop = loop
        return self._sdk, self._gate

    async def aclose(self) -> None:
        if self._sdk is not None and self._loop is asyncio.get_running_loop():
            await self._sdk.close()
        self._sdk = self._gate = self._loop = None

    def _error(self, exc: BaseException) -> str:
        openai = _openai()
        if isinstance(exc, openai.APIStatusError):
            what = f"HTTP {exc.status_code} from {self.base_url}/v1: {exc.message}"
        elif isinstance(exc, openai.APITimeoutError):
            what = f"no answer from {self.base_url}/v1 within {self.timeout:g} s"
        elif isinstance(exc, openai.APIConnectionError):
            what = f"could not reach {self.base_url}/v1 ({exc.__cause__ or exc})"
        else:
            what = f"{type(exc).__name__}: {exc}"
        what = self.scrub.text(" ".join(what.split()))
        return what[:_ERROR_CHARS] + ("…" if len(what) > _ERROR_CHARS else "")

    # --- the cache -----------------------------------------------------------------------
    @staticmethod
    def cache_key(kind: str, payload: Mapping[str, Any]) -> str:
        blob = json.dumps(
            {"kind": kind, "format": _CACHE_FORMAT, **payload},
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def _path(self, key: str, suffix: str) -> Path | None:
        return self.cache_dir / key[:2] / f"{key}{suffix}" if self.cache_dir else None

    def _read(self, key: str) -> dict[str, Any] | None:
        path = self._path(key, ".json")
        if path is None or not path.is_file():
            return None
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            return None  # a torn or foreign file: ask again and overwrite it
        return data if isinstance(data, dict) else None

    def _write(self, key: str, suffix: str, data: bytes) -> None:
        path = self._path(key, suffix)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)  # whole or absent: a reader never sees half a file
        except OSError:
            pass  # a read-only cache only costs a request next time

    # --- chat ----------------------------------------------------------------------------
    async def chat_json(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        model: str,
        schema: Mapping[str, Any] | None = None,
        schema_name: str = "answer",
        params: Mapping[str, Any] | None = None,
    ) -> ChatReply:
        """Ask for one JSON object.

        With ``response_format={"type": "json_schema", ...}`` while the endpoint accepts it, else
        plainly, reading the first JSON object of the reply. Never raises for the endpoint's
        failures: they are the reply's ``error``.
        """
        if not isinstance(model, str) or not model:
            raise ValueError(
                f"model must be a model name such as 'openai/gpt-4.1-mini', not {model!r}"
            )
        msgs = [dict(m) for m in messages]
        extra = dict(params or {})
        key = self.cache_key(
            "chat", {"model": model, "messages": msgs, "params": extra, "schema": schema}
        )
        hit = self._read(key)
        if hit is not None and isinstance(hit.get("text"), str):
            self.cache_hits += 1
            return self._reply(
                hit["text"], model, True, hit.get("latency_ms"), hit.get("structured")
            )
        self._client()
        pending = self._inflight.get(key)
        if pending is not None:  # the same request in flight: share its answer
            reply = await asyncio.shield(pending)
            self.cache_hits += 1
            return ChatReply(**{**reply.__dict__, "cached": True})
        future: asyncio.Future[ChatReply] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            reply = await self._ask(key, msgs, model, schema, schema_name, extra)
            future.set_result(reply)
            return reply
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when none waits
            raise
        finally:
            self._inflight.pop(key, None)

    @staticmethod
    async def _create(sdk: Any, body: dict[str, Any]) -> Any:
        # The SDK's own POST (its retries, timeouts and errors), without the per-call walk of
        # the typed parameters, which costs more CPU than the rest of a request.
        from openai.types.chat import ChatCompletion

        return await sdk.post("/chat/completions", cast_to=ChatCompletion, body=body)

    async def _ask(
        self,
        key: str,
        msgs: list[dict[str, Any]],
        model: str,
        schema: Mapping[str, Any] | None,
        schema_name: str,
        extra: dict[str, Any],
    ) -> ChatReply:
        openai = _openai()
        sdk, gate = self._client()
        async with gate:
            started = time.perf_counter()
            structured = schema is not None and self._structured
            try:
                try:
                    self.requests += 1
                    kwargs = dict(extra)
                    if structured:
                        kwargs["response_format"] = {
                            "type": "json_schema",
                            "json_schema": {"name": schema_name, "schema": schema, "strict": True},
                        }
                    completion = await self._create(
                        sdk, {"model": model, "messages": msgs, **kwargs}
                    )
                except openai.BadRequestError as exc:
                    if not (structured and _wants_plain(exc)):
                        raise
                    self._structured = structured = False  # this endpoint: plain from now on
                    self.requests += 1
                    completion = await self._create(
                        sdk, {"model": model, "messages": msgs, **extra}
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                latency = (time.perf_counter() - started) * 1000
                return ChatReply(None, None, model, False, latency, self._error(exc))
            latency = (time.perf_counter() - started) * 1000
        try:
            text = completion.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            text = None
        if not isinstance(text, str):
            return ChatReply(
                None, None, model, False, latency, "the endpoint's reply has no message content"
            )
        text = self.scrub.text(text)
        record = {"text": text, "model": model, "latency_ms": latency, "structured": structured}
        # off the loop: a disk write would hold up the other requests' replies
        await asyncio.to_thread(
            self._write, key, ".json", json.dumps(record, ensure_ascii=False).encode()
        )
        return self._reply(text, model, False, latency, structured)

    def _reply(
        self, text: str, model: str, cached: bool, latency: Any, structured: Any
    ) -> ChatReply:
        data = first_json_object(text)
        error = None
        if data is None:
            preview = " ".join(text.split())[:120]
            error = f"the model's reply holds no JSON object: {preview!r}"
        return ChatReply(
            text,
            data,
            model,
            cached,
            float(latency) if isinstance(latency, int | float) else None,
            error,
            bool(structured),
        )

    # --- speech --------------------------------------------------------------------------
    async def speech(
        self,
        text: str,
        *,
        voice: str,
        model: str,
        response_format: str = "wav",
        speed: float | None = None,
    ) -> bytes:
        """``text`` spoken by ``/v1/audio/speech``.

        The audio file's bytes (WAV by default; ``"pcm"`` is raw 16-bit mono). Cached like chat
        answers. Raises :class:`ModelError` (scrubbed) when the endpoint fails: a caller cannot go
        on without its audio.
        """
        if not isinstance(text, str) or not text.strip():
            raise ValueError("text must be a non-empty string to speak")
        if response_format not in SPEECH_FORMATS:
            allowed = ", ".join(SPEECH_FORMATS)
            raise ValueError(f"response_format must be one of {allowed}, not {response_format!r}")
        params: dict[str, Any] = {"voice": voice, "model": model, "format": response_format}
        if speed is not None:
            params["speed"] = speed
        key = self.cache_key("speech", {"input": text, **params})
        path = self._path(key, f".{response_format}")
        if path is not None and path.is_file():
            self.cache_hits += 1
            return path.read_bytes()
        sdk, gate = self._client()
        kwargs: dict[str, Any] = {"speed": speed} if speed is not None else {}
        async with gate:
            try:
                self.requests += 1
                response = await sdk.audio.speech.create(
                    model=model, voice=voice, input=text, response_format=response_format, **kwargs
                )
                audio = response.content
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise ModelError(self._error(exc)) from None
        await asyncio.to_thread(self._write, key, f".{response_format}", bytes(audio))
        return bytes(audio)
