from typing import Annotated

from fastapi import Depends

from keel.auth.dependencies import require
from keel.platform.security.principal import Principal

DocumentsRead = Annotated[Principal, Depends(require("documents:read"))]
DocumentsWrite = Annotated[Principal, Depends(require("documents:write"))]
