"""The gunicorn worker class the container runs (docker/gunicorn.conf.py)."""

from uvicorn_worker import UvicornWorker


class DjangoUvicornWorker(UvicornWorker):
    """uvicorn's gunicorn worker with the ASGI lifespan protocol off.

    Django does not implement lifespan; with it on ("auto"), every worker logs a misleading
    "ASGI 'lifespan' protocol appears unsupported" line at each boot.
    """

    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "lifespan": "off"}
