from typing import Annotated

from fastapi import Depends

from keel.auth.dependencies import require
from keel.platform.security.principal import Principal

FoldersRead = Annotated[Principal, Depends(require("folders:read"))]
FoldersWrite = Annotated[Principal, Depends(require("folders:write"))]
