from keel.platform.http.errors import Forbidden, KeelError, NotFound


class DocumentNotFound(NotFound):
    default_message = "No such document."


class DocumentNotDeletable(Forbidden):
    default_message = "Only the document's owner, an owner of its product, or an admin may delete it."


class UnsupportedDocumentType(KeelError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    status_code = 415
    default_message = (
        "The file is not a PDF, DOCX, plain text, Markdown or HTML document (judged by its content)."
    )
