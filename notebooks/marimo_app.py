"""A voice agent in marimo: `marimo run notebooks/marimo_app.py` serves it as a page, and
`marimo edit notebooks/marimo_app.py` opens it as a notebook.

The code runs on the server, so INWORLD_API_KEY (environment or `.env`) stays there and the page
only ever holds the call. With no key, the local realtime emulator answers on the server's
127.0.0.1, so open the page on the same machine. `marimo run notebooks/marimo_app.py -- --log
FILE` also writes the event log to FILE (JSON lines; `EventLog.read_jsonl` reads it back).
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App()


@app.cell
def _():
    import marimo as mo

    mo.md(
        """
        # Talk to the agent

        Click **Connect**, allow the microphone, and talk, or type below.
        """
    )
    return (mo,)


@app.cell
def _(mo):
    import os

    from realtime_widget import Emulator, RealtimeWidget

    INSTRUCTIONS = "You are a friendly voice concierge. Keep answers short."
    log_path = mo.cli_args().get("log") or None
    # the kernel's own line to the call ("auto"): `-- --sideband off` for the page's path only
    sideband = False if mo.cli_args().get("sideband") == "off" else "auto"
    if os.environ.get("INWORLD_API_KEY"):
        emu = None
        w = RealtimeWidget(
            instructions=INSTRUCTIONS, voice="Ashley", log_path=log_path, sideband=sideband
        )
    else:
        emu = Emulator().start()
        w = RealtimeWidget(
            base_url=emu.base_url,
            api_key=emu.api_key,
            instructions=INSTRUCTIONS,
            voice="Ashley",
            log_path=log_path,
            sideband=sideband,
        )
    return (w,)


@app.cell
def _(mo, w):
    # marimo shows an anywidget wrapped as a UI element. Other cells use `w` (the widget), not
    # the wrapper: by marimo's reactivity, a cell that reads the wrapper's `.value` reruns as
    # the widget's state changes.
    mo.ui.anywidget(w)
    return


@app.cell
def _(mo):
    ask_button = mo.ui.run_button(label="Ask from Python")
    mo.hstack([ask_button, mo.md("sends a typed turn with `w.ask(...)` once connected")])
    return (ask_button,)


@app.cell
async def _(ask_button, mo, w):
    # Runs when the button is clicked. With the sideband up (the service offers it), the reply
    # reaches the kernel on its own line and the await works in this cell. Without it the
    # reply arrives through the page, and marimo delivers the page's messages only between
    # cell runs: the await raises after a 3 s probe and says so, and the handle fills in
    # anyway: read `reply.text` in a cell run later.
    mo.stop(not ask_button.value)
    reply = w.ask("Which dishes are vegetarian?", timeout=20)
    try:
        await reply
        said = f"awaited in the cell: {reply.text}"
    except Exception as exc:  # shown on the page, as a user would see it
        said = f"{type(exc).__name__}: {exc}"
    mo.md(f"**mid-cell await**: {said}")
    return


if __name__ == "__main__":
    app.run()
