"""The runs' progress in a notebook: a bar, the current variant and turn, and a Stop button."""

from __future__ import annotations

import html
from collections.abc import Callable


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
        """A progress box displayed in the running cell; None outside a kernel or without
        ipywidgets."""
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
