from keel.platform.http.errors import Conflict, Forbidden, NotFound


class FolderNotFound(NotFound):
    default_message = "No such folder."


class FolderReadOnly(Forbidden):
    default_message = "You may read this folder but not change it."


class FolderNotOwned(Forbidden):
    default_message = "Only an owner of this folder may do this."


class FolderNotEmpty(Conflict):
    default_message = "The folder is not empty; delete with ?recursive=true to delete its contents too."


class FolderCycle(Conflict):
    default_message = "A folder cannot be moved into itself or one of its sub-folders."


class FolderTooDeep(Conflict):
    default_message = "Folders nest at most 10 levels deep."
