from keel.platform.http.errors import Conflict, NotFound


class WebhookNotFound(NotFound):
    default_message = "No such webhook."


class DeliveryNotFound(NotFound):
    default_message = "No such delivery for this webhook."


class TooManyWebhooks(Conflict):
    default_message = "You have as many webhooks as allowed; delete one first."


class WebhookDisabled(Conflict):
    default_message = "The webhook is disabled; enable it (is_active: true) first."


class DeliveryInProgress(Conflict):
    default_message = "The delivery is still pending; redeliver it once it has succeeded or failed."
