"""``w.controls()``: an ipywidgets panel linked both ways to the session traits.

Panel -> trait changes are debounced (a slider drag or a burst of typing becomes one
``session.update`` once it settles); trait -> panel changes apply at once. The service's
answer to each update (``session.updated`` or an ``error``) is shown under the panel, and a
refused field's reason under that field (from the session guard's ``session.rejected``, or
from the error's ``param`` without a guard).
"""

from __future__ import annotations

import asyncio
import html
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as W
import traitlets as t

from ._session import (
    EAGERNESS,
    KNOWN_MODELS,
    KNOWN_TRANSCRIPTION_MODELS,
    KNOWN_TTS_MODELS,
    KNOWN_VOICES,
    SPEED_RANGE,
    TEMPERATURE_RANGE,
    normalize_turn_detection,
)
from ._session_guard import param_path
from ._turns import obj

if TYPE_CHECKING:
    from ._core import SessionCore
    from ._session_guard import SessionGuard

DEFAULT_DEBOUNCE_S = 0.4
MODALITIES = {"audio + text": ["audio", "text"], "audio": ["audio"], "text": ["text"]}
# Where a refused field (the error's ``param``, less "session.") is shown: the control's name.
FIELD_CONTROLS: dict[tuple[str | int, ...], str] = {
    ("model",): "model",
    ("instructions",): "instructions",
    ("output_modalities",): "output_modalities",
    ("temperature",): "temperature",
    ("max_output_tokens",): "max_output_tokens",
    ("audio", "output", "voice"): "voice",
    ("audio", "output", "model"): "tts_model",
    ("audio", "output", "speed"): "speed",
    ("audio", "input", "transcription"): "transcription_model",
    ("audio", "input", "turn_detection"): "turn_type",
    ("audio", "input", "turn_detection", "type"): "turn_type",
    ("audio", "input", "turn_detection", "eagerness"): "eagerness",
    ("audio", "input", "turn_detection", "create_response"): "create_response",
    ("audio", "input", "turn_detection", "interrupt_response"): "interrupt_response",
    ("audio", "input", "turn_detection", "threshold"): "threshold",
    ("audio", "input", "turn_detection", "prefix_padding_ms"): "prefix_padding_ms",
    ("audio", "input", "turn_detection", "silence_duration_ms"): "silence_duration_ms",
}
# Which controls show each session trait (a trait change clears their refusal notes).
_TURN_CONTROLS = ("turn_type", "eagerness", "create_response", "interrupt_response",
                  "threshold", "prefix_padding_ms", "silence_duration_ms")  # fmt: skip


def control_for(param: Any) -> str | None:
    """The panel control that shows the field ``param`` names (its nearest shown parent)."""
    path = param_path(param)
    while path:
        if path in FIELD_CONTROLS:
            return FIELD_CONTROLS[path]
        path = path[:-1]
    return None


class Debouncer:
    """Call ``fn`` once, ``delay`` seconds after the last ``__call__``.

    Inside a kernel the timer is the kernel's own event loop (``call_later``), so ``fn`` runs
    on the main thread between cells, like every other widget message; without a running
    loop (a plain script) it falls back to a timer thread.
    """

    def __init__(self, delay: float, fn: Callable[[], None]) -> None:
        self.delay, self.fn = delay, fn
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._handle: asyncio.TimerHandle | threading.Timer | None = None
        self._token: object | None = None  # the one pending call that may still fire
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.cancel()
            token = object()
            self._token = token
            if self._loop is not None and self._loop.is_running():
                self._handle = self._loop.call_later(self.delay, self._fire, token)
            else:
                timer = threading.Timer(self.delay, self._fire, (token,))
                timer.daemon = True
                timer.start()
                self._handle = timer

    def _fire(self, token: object) -> None:
        with self._lock:
            if token is not self._token:
                return  # superseded (or flushed) while this timer was already running
            self._handle = self._token = None
        self.fn()

    @property
    def pending(self) -> bool:
        """Whether a call is waiting for its deadline."""
        return self._handle is not None

    def flush(self) -> None:
        """Run a pending call now instead of at its deadline."""
        with self._lock:
            handle, self._handle, self._token = self._handle, None, None
        if handle is not None:
            handle.cancel()
            self.fn()


class ControlPanel(W.VBox):
    """The session's settings as ipywidgets inputs, linked both ways to its traits.

    Model, instructions, voice, TTS model, speed, output modalities, turn detection (type,
    eagerness, whether to respond and let speech interrupt, server VAD's threshold, padding and
    silence), transcription model, temperature and max output tokens. Edits are debounced: a
    slider drag or a burst of typing becomes one ``session.update`` once it settles; a change
    made in Python shows in the panel at once. The service's answer to each update shows under
    the panel, and a refused field's reason under that field. The model, voice and model ids
    are free text with the known values offered. Build it with ``controls()``.

    Args:
        session: The session whose traits the panel edits.
        debounce: Seconds after the last edit before the update is sent.
        guard: The session's check of each update against the service's answer, which names a
            refused field; None reads the field from the error's ``param``.

    Example:
        >>> panel = w.controls()
        >>> panel  # shows the inputs; edit them, or set w.speed = 1.2 and watch the slider
    """

    def __init__(
        self,
        session: SessionCore,
        *,
        debounce: float = DEFAULT_DEBOUNCE_S,
        guard: SessionGuard | None = None,
    ) -> None:
        self._w = session
        self._guard = guard
        self._syncing = False  # true while the panel is being set from the traits
        self._pending: set[str] = set()  # controls edited since the last update
        self._pending_lock = threading.Lock()
        self._debouncer = Debouncer(debounce, self._apply_pending)
        lay = W.Layout(width="100%")
        style = {"description_width": "150px"}

        def combo(desc: str, options: tuple[str, ...]) -> W.Combobox:
            return W.Combobox(
                options=list(options), description=desc, ensure_option=False,
                continuous_update=False, layout=lay, style=style,
            )  # fmt: skip

        self.model = combo("Model", KNOWN_MODELS)
        self.instructions = W.Textarea(
            description="Instructions", continuous_update=False, rows=3, layout=lay, style=style
        )
        self.voice = combo("Voice", KNOWN_VOICES)
        self.tts_model = combo("TTS model", KNOWN_TTS_MODELS)
        self.speed = W.FloatSlider(
            description="Speed", min=SPEED_RANGE[0], max=SPEED_RANGE[1], step=0.05,
            continuous_update=False, layout=lay, style=style,
        )  # fmt: skip
        self.modalities = W.Dropdown(
            description="Output", options=list(MODALITIES), layout=lay, style=style
        )
        self.turn_type = W.Dropdown(
            description="Turn detection",
            options=[("semantic VAD", "semantic_vad"), ("server VAD", "server_vad"), ("off", None)],
            layout=lay,
            style=style,
        )
        self.eagerness = W.Dropdown(
            description="Eagerness", options=list(EAGERNESS), layout=lay, style=style
        )
        self.create_response = W.Checkbox(description="Respond automatically", indent=True)
        self.interrupt_response = W.Checkbox(description="Let speech interrupt", indent=True)
        self.threshold = W.FloatSlider(
            description="VAD threshold", min=0.0, max=1.0, step=0.05,
            continuous_update=False, layout=lay, style=style,
        )  # fmt: skip
        self.prefix_padding_ms = W.IntSlider(
            description="Prefix padding (ms)", min=0, max=1000, step=50,
            continuous_update=False, layout=lay, style=style,
        )  # fmt: skip
        self.silence_duration_ms = W.IntSlider(
            description="Silence (ms)", min=100, max=3000, step=50,
            continuous_update=False, layout=lay, style=style,
        )  # fmt: skip
        self.transcription_model = combo("Transcription", ("", *KNOWN_TRANSCRIPTION_MODELS))
        self.transcription_model.placeholder = "off"
        self.temperature = W.FloatSlider(
            description="Temperature", min=TEMPERATURE_RANGE[0], max=TEMPERATURE_RANGE[1],
            step=0.05, continuous_update=False, layout=lay, style=style,
        )  # fmt: skip
        self.max_output_tokens = W.Text(
            description="Max output tokens", placeholder="a number or inf",
            continuous_update=False, layout=lay, style=style,
        )  # fmt: skip
        self.answer = W.HTML(layout=W.Layout(min_height="1.6em"))
        # One note under each control, shown only while the service refuses that field.
        self.notes: dict[str, W.HTML] = {}
        for name in self._controls():
            note = W.HTML(layout=W.Layout(display="none", margin="0 0 0 158px"))
            self.notes[name] = note
        self._server_vad_box = W.VBox(
            self._noted([self.threshold, self.prefix_padding_ms, self.silence_duration_ms])
        )
        self._semantic_box = W.VBox(self._noted([self.eagerness]))
        super().__init__(
            self._noted(
                [
                    W.HTML("<b>Session</b>"),
                    self.model,
                    self.instructions,
                    self.modalities,
                    self.temperature,
                    self.max_output_tokens,
                    W.HTML("<b>Voice</b>"),
                    self.voice,
                    self.tts_model,
                    self.speed,
                    W.HTML("<b>Listening</b>"),
                    self.turn_type,
                    self._semantic_box,
                    self._server_vad_box,
                    self.create_response,
                    self.interrupt_response,
                    self.transcription_model,
                    self.answer,
                ]
            ),
            layout=W.Layout(max_width="640px"),
        )
        self._from_traits()
        # panel -> traits, debounced
        for name, control in self._controls().items():
            control.observe(lambda ch, n=name: self._edited(n), names="value")
        # traits -> panel, at once
        self._closed = False
        session.observe(self._on_trait, names=list(self._trait_names()))
        session.on("session.updated", self._on_updated)
        session.on("error", self._on_error)
        self._unwatch = guard.watch(self._on_guard) if guard is not None else None

    def _noted(self, widgets: list[W.Widget]) -> list[W.Widget]:
        by_widget = {id(c): n for n, c in self._controls().items()}
        out: list[W.Widget] = []
        for widget in widgets:
            out.append(widget)
            name = by_widget.get(id(widget))
            if name is not None:
                out.append(self.notes[name])
        return out

    def close(self) -> None:
        """Close the panel and let go of the session: no observer or callback stays behind.

        An edit made just before closing still goes out. Safe to call twice.

        Example:
            >>> panel = w.controls()
            >>> panel.close()
        """
        if getattr(self, "_closed", True):  # twice (ipywidgets' __del__), or before __init__ ended
            super().close()
            return
        self._closed = True
        w = self._w
        w.unobserve(self._on_trait, names=list(self._trait_names()))
        w.off("session.updated", self._on_updated)
        w.off("error", self._on_error)
        if self._unwatch is not None:
            self._unwatch()
        self._debouncer.flush()  # an edit made just before closing still goes out
        for child in self._all_children():
            child.close()
        super().close()

    def _all_children(self) -> list[W.Widget]:
        out: list[W.Widget] = []
        stack = list(self.children)
        while stack:
            child = stack.pop()
            out.append(child)
            stack.extend(getattr(child, "children", ()))
        return out

    def _on_trait(self, change: Any) -> None:
        name = change.get("name") if isinstance(change, dict) else getattr(change, "name", None)
        names = _TURN_CONTROLS if name == "turn_detection" else (name,)
        for n in names:
            self._note(str(n), "")
        self._from_traits()

    # -- the two directions ------------------------------------------------------------------

    def _controls(self) -> dict[str, W.ValueWidget]:
        return {
            "model": self.model,
            "instructions": self.instructions,
            "voice": self.voice,
            "tts_model": self.tts_model,
            "speed": self.speed,
            "output_modalities": self.modalities,
            "temperature": self.temperature,
            "max_output_tokens": self.max_output_tokens,
            "transcription_model": self.transcription_model,
            "turn_type": self.turn_type,
            "eagerness": self.eagerness,
            "create_response": self.create_response,
            "interrupt_response": self.interrupt_response,
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
        }

    @staticmethod
    def _trait_names() -> tuple[str, ...]:
        return (
            "model", "instructions", "voice", "tts_model", "speed", "output_modalities",
            "temperature", "max_output_tokens", "transcription_model", "turn_detection",
        )  # fmt: skip

    def _from_traits(self) -> None:
        w = self._w
        self._syncing = True
        try:
            self.model.value = w.model
            self.instructions.value = w.instructions
            self.voice.value = w.voice
            self.tts_model.value = w.tts_model
            self.speed.value = w.speed
            self.modalities.value = next(
                k for k, v in MODALITIES.items() if v == list(w.output_modalities)
            )
            self.temperature.value = w.temperature
            self.max_output_tokens.value = str(w.max_output_tokens)
            self.transcription_model.value = w.transcription_model or ""
            td = w.turn_detection
            self.turn_type.value = td["type"] if td else None
            semantic = normalize_turn_detection({"type": "semantic_vad"}) or {}
            server = normalize_turn_detection({"type": "server_vad"}) or {}
            self.eagerness.value = (td or semantic).get("eagerness", semantic["eagerness"])
            self.create_response.value = (td or semantic)["create_response"]
            self.interrupt_response.value = (td or semantic)["interrupt_response"]
            for key in ("threshold", "prefix_padding_ms", "silence_duration_ms"):
                getattr(self, key).value = (td or {}).get(key, server[key])
            kind = td["type"] if td else None
            self._semantic_box.layout.display = None if kind == "semantic_vad" else "none"
            self._server_vad_box.layout.display = None if kind == "server_vad" else "none"
            for c in (self.create_response, self.interrupt_response):
                c.layout.display = None if td else "none"
        finally:
            self._syncing = False

    def _edited(self, name: str) -> None:
        if self._syncing:
            return
        self._note(name, "")  # a new value: the old refusal no longer applies
        with self._pending_lock:
            self._pending.add(name)
        self._debouncer()

    def _apply_pending(self) -> None:
        with self._pending_lock:
            names, self._pending = self._pending, set()
        if not names:
            return
        w = self._w
        try:
            w.update_session(**self._panel_values(names))
        except (t.TraitError, ValueError) as exc:
            self._show(f"✗ not applied: {exc}", error=True)
            self._from_traits()  # the panel shows what the session really holds
            return
        if w.status != "connected":
            self._show("saved; sent to the service when you connect")
        else:
            self._show("… sent, waiting for the service")

    def _panel_values(self, names: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        simple = ("model", "instructions", "voice", "tts_model", "speed", "temperature")
        for n in names & set(simple):
            out[n] = self._controls()[n].value
        if "output_modalities" in names:
            out["output_modalities"] = MODALITIES[self.modalities.value]
        if "max_output_tokens" in names:
            raw = self.max_output_tokens.value.strip()
            out["max_output_tokens"] = int(raw) if raw.isdigit() else raw
        if "transcription_model" in names:
            out["transcription_model"] = self.transcription_model.value.strip() or None
        turn_keys = {"turn_type", "eagerness", "create_response", "interrupt_response",
                     "threshold", "prefix_padding_ms", "silence_duration_ms"}  # fmt: skip
        if names & turn_keys:
            kind = self.turn_type.value
            if kind is None:
                out["turn_detection"] = None
            else:
                td: dict[str, Any] = {
                    "type": kind,
                    "create_response": self.create_response.value,
                    "interrupt_response": self.interrupt_response.value,
                }
                if kind == "semantic_vad":
                    td["eagerness"] = self.eagerness.value
                else:
                    td.update(
                        threshold=self.threshold.value,
                        prefix_padding_ms=self.prefix_padding_ms.value,
                        silence_duration_ms=self.silence_duration_ms.value,
                    )
                out["turn_detection"] = td
        return out

    # -- the service's answer ----------------------------------------------------------------

    def _show(self, text: str, *, error: bool = False) -> None:
        colour = "var(--jp-error-color1, #c62828)" if error else "var(--jp-ui-font-color2, #555)"
        self.answer.value = f'<span style="color:{colour}">{html.escape(text)}</span>'

    def _on_updated(self, event: dict[str, Any]) -> None:
        session = obj(event.get("session"))
        out = obj(obj(session.get("audio")).get("output"))
        self._show(
            f"✓ session.updated (voice {out.get('voice')!s}, speed {out.get('speed')!s}, "
            f"model {session.get('model')!s})"
        )

    def _on_error(self, event: dict[str, Any]) -> None:
        err = event.get("error")
        said = obj(err).get("message", err) if err is not None else event.get("message", event)
        param = f" [{obj(err)['param']}]" if obj(err).get("param") else ""
        self._show(f"✗ the service refused: {said}{param}", error=True)
        if self._guard is None:  # with a guard, its session.rejected says more
            control = control_for(obj(err).get("param"))
            if control is not None:
                self._note(control, f"✗ the service refused this: {said}")

    def _on_guard(self, record: dict[str, Any]) -> None:
        if record.get("type") != "session.rejected":
            return
        words = f"✗ the service refused this: {record.get('message')}"
        if record.get("value") is not None:
            words += f" (sent {record['value']!r})"
        if record.get("resent"):
            words += "; the rest of the update was sent again without it"
        control = control_for(record.get("param"))
        if control is not None:
            self._note(control, words)
        else:  # a field the panel does not show (tools, providerData, ...)
            self._show(f"{words} [{record.get('param')}]", error=True)

    def _note(self, control: str, text: str) -> None:
        note = self.notes.get(control)
        if note is None:
            return
        colour = "var(--jp-error-color1, #c62828)"
        note.value = f'<small style="color:{colour}">{html.escape(text)}</small>' if text else ""
        note.layout.display = None if text else "none"
