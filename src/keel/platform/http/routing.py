"""Route class shared by every router: the first docstring line is the OpenAPI summary."""

from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute


class KeelRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        doc = (endpoint.__doc__ or "").strip()
        if doc:
            first, _, rest = doc.partition("\n")
            kwargs.setdefault("summary", first.strip())
            if kwargs.get("description") is None:
                kwargs["description"] = rest.strip() or None
        super().__init__(path, endpoint, **kwargs)


def operation_id(route: APIRoute) -> str:
    return route.name
