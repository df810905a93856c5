from typing import Annotated

from fastapi import Depends

from keel.auth.dependencies import require
from keel.platform.security.principal import Principal

WebhooksRead = Annotated[Principal, Depends(require("webhooks:read"))]
WebhooksWrite = Annotated[Principal, Depends(require("webhooks:write"))]
