"""Access to the process runtime from request handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quart import Quart

if TYPE_CHECKING:
    from zapline.runtime import Runtime


def runtime_of(app: Quart) -> Runtime:
    """Return the ``Runtime`` the app was created with."""
    return app.extensions["zapline"]  # type: ignore[no-any-return]
