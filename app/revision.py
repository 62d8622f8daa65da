"""The X-Revision header: which revision of the code answered a request.

APP_REVISION is baked into the image by the Dockerfile from the git revision scripts/deploy.sh
builds, so after `make deploy` or `make rollback` one `curl -sI https://example.com/` shows which
version serves. It names a commit of the site's own code: nothing a visitor could use.
"""

import os

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

REVISION = os.environ.get("APP_REVISION", "")


class RevisionMiddleware:
    # Both sync and async, so under ASGI it costs no hop to a thread and back.
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.async_mode:
            return self._acall(request)
        return self._tag(self.get_response(request))

    async def _acall(self, request):
        return self._tag(await self.get_response(request))

    @staticmethod
    def _tag(response):
        if REVISION:
            response.headers["X-Revision"] = REVISION
        return response
