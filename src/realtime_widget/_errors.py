"""The one base class of the errors this package raises on purpose."""

from __future__ import annotations


class RealtimeWidgetError(Exception):
    """The base of every error realtime-widget raises itself.

    Catch it to handle any of them: a refused call (:class:`~realtime_widget.ProviderError`),
    a host that cannot deliver the page's messages while a cell awaits
    (:class:`~realtime_widget.MidCellDeliveryError`), a closed session
    (:class:`~realtime_widget.SessionClosedError`), a failed judge or caller request
    (:class:`~realtime_widget.evaluate.ModelError`). Bad arguments raise the built-in
    ``TypeError`` and ``ValueError``, naming the field and what is allowed.

    Example:
        >>> from realtime_widget import ProviderError, RealtimeWidgetError
        >>> issubclass(ProviderError, RealtimeWidgetError)
        True
    """
