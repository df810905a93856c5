from typing import Annotated

from fastapi import Depends

from keel.auth.dependencies import require
from keel.platform.security.principal import Principal

ProductsRead = Annotated[Principal, Depends(require("products:read"))]
ProductsWrite = Annotated[Principal, Depends(require("products:write"))]
ProductsAdmin = Annotated[Principal, Depends(require("products:admin"))]
# Exporting in the background reads products and creates a job.
ProductsExportJob = Annotated[Principal, Depends(require("products:read", "jobs:write"))]
