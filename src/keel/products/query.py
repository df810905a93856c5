"""The query string of the product lists (``GET /products`` and a folder's products):
their filters and list parameters, validated in one pass."""

from typing import Annotated

from fastapi import Depends

from keel.platform.http.listing import ListQuery, ListRequest
from keel.products.repository import SORTING
from keel.products.schemas import ProductFilters

PRODUCT_LIST = ListQuery(SORTING, ProductFilters)
ProductList = Annotated[ListRequest[ProductFilters], Depends(PRODUCT_LIST)]
