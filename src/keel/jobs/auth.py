from typing import Annotated

from fastapi import Depends

from keel.auth.dependencies import require
from keel.platform.security.principal import Principal

JobsRead = Annotated[Principal, Depends(require("jobs:read"))]
JobsWrite = Annotated[Principal, Depends(require("jobs:write"))]
# Every user's jobs: the account administrators' permission (held by the admin role only),
# and the jobs permission too, so an admin's API key needs both scopes.
JobsAdminRead = Annotated[Principal, Depends(require("users:admin", "jobs:read"))]
JobsAdminWrite = Annotated[Principal, Depends(require("users:admin", "jobs:write"))]
