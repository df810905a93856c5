from keel.platform.http.errors import Conflict, NotFound


class JobNotFound(NotFound):
    default_message = "No such job."


class JobFinished(Conflict):
    default_message = "The job has already finished; only a queued or running job can be cancelled."


class JobNotRetryable(Conflict):
    default_message = "Only a dead or failed job can be retried."


class NoDownload(NotFound):
    default_message = "This job has no file to download (it has not succeeded, or the file has expired)."
