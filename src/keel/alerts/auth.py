from typing import Annotated

from fastapi import Depends

from keel.auth.dependencies import require
from keel.platform.security.principal import Principal

AlertsRead = Annotated[Principal, Depends(require("alerts:read"))]
AlertsWrite = Annotated[Principal, Depends(require("alerts:write"))]
