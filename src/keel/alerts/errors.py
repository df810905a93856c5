from keel.platform.http.errors import Conflict, NotFound


class AlertNotFound(NotFound):
    default_message = "No such alert."


class AlertResolved(Conflict):
    default_message = "The alert is already resolved."
