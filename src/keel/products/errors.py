from keel.platform.http.errors import Forbidden, NotFound


class ProductNotFound(NotFound):
    default_message = "No such product."


class ProductReadOnly(Forbidden):
    default_message = "You may read this product but not change it."


class ProductNotOwned(Forbidden):
    default_message = "Only an owner of this product may do this."
