"""The runs' progress in a notebook: a bar, the current variant and turn, and a Stop button."""

from __future__ import annotations

import html
import sys
from collections.abc import Callable
from typing import Any


def in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel (where a progress bar can show)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class Progress:
    """A progress bar, the current variant and turn, and a Stop button (ipywidgets)."""

    def __init__(self, total: int, stop: Callable[[], None]) -> None:
        import ipywidgets as W

        self.bar = W.IntProgress(value=0, min=0, max=max(1, total), description="turns")
        self.label = W.HTML(value="starting")
        self.button = W.Button(description="Stop", button_style="warning", icon="stop")
        self.button.on_click(lambda _b: stop())
        self.box = W.HBox([self.bar, self.button, self.label])

    @classmethod
    def shown(cls, total: int, stop: Callable[[], None]) -> Progress | None:
        """A progress box displayed in the running cell.

        None outside a kernel or without ipywidgets.
        """
        if not in_kernel():
            return None
        try:
            progress = cls(total, stop)
        except ImportError:
            return None
        from IPython.display import display

        display(progress.box)
        return progress

    def show(self, done: int, words: str) -> None:
        self.bar.value = done
        self.label.value = html.escape(words)

    def close(self, done: int, words: str) -> None:
        self.bar.value = done
        self.label.value = html.escape(words)
        self.button.disabled = True


class RunsProgress:
    """A grid's runs at once: runs done, running and failed (and the rate-limit retries).

    In a notebook a bar with a Stop button (ipywidgets); in a terminal one line on stderr,
    rewritten in place; elsewhere (a log file, CI) nothing until the last words.
    """

    def __init__(
        self, total: int, stop: Callable[[], None], *, notebook: bool, noun: str = "runs"
    ) -> None:
        self.total = max(1, total)
        self.noun = noun
        self.box: Any = None
        self.last = ""
        if notebook:
            import ipywidgets as W

            self.bar = W.IntProgress(value=0, min=0, max=self.total, description=noun)
            self.label = W.HTML(value="starting")
            self.button = W.Button(description="Stop", button_style="warning", icon="stop")
            self.button.on_click(lambda _b: stop())
            self.box = W.HBox([self.bar, self.button, self.label])

    @classmethod
    def shown(
        cls, total: int, stop: Callable[[], None], *, noun: str = "runs"
    ) -> RunsProgress | None:
        """The notebook kind in a kernel, the text kind on a terminal, else None."""
        if in_kernel():
            try:
                progress = cls(total, stop, notebook=True, noun=noun)
            except ImportError:
                return None
            from IPython.display import display

            display(progress.box)
            return progress
        if sys.stderr is not None and sys.stderr.isatty():
            return cls(total, stop, notebook=False, noun=noun)
        return None

    def words(self, done: int, running: int, failed: int, retries: int) -> str:
        more = f" · {retries} rate-limit retries" if retries else ""
        return f"{done}/{self.total} {self.noun} done · {running} running · {failed} failed{more}"

    def show(self, *, done: int, running: int, failed: int, retries: int = 0) -> None:
        words = self.words(done, running, failed, retries)
        if self.box is not None:
            self.bar.value = done + failed
            self.label.value = html.escape(words)
        elif words != self.last:
            sys.stderr.write("\r" + words.ljust(len(self.last)))
            sys.stderr.flush()
        self.last = words

    def close(self, words: str) -> None:
        if self.box is not None:
            self.label.value = html.escape(f"{self.last} — {words}")
            self.button.disabled = True
        else:
            sys.stderr.write("\r" + self.last + "\n")
            sys.stderr.flush()
