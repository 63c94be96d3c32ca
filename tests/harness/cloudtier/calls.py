"""Record every HTTP call one keystoneauth session makes (for counting a provider's API calls).

Used by tests/functional/test_cloud_heat_calls.py (which calls a wait makes) and by
bench/cloud.py (how many calls each step costs).
"""

import re
import urllib.parse


class CallRecorder:
    """Wraps Session.request: records (method, normalised path, status, event ids) of every call.

    Event ids are kept for Heat events listings (None for any other call), so a caller can see
    whether an event was fetched twice or a poll came back empty."""

    def __init__(self, session):
        self.calls = []
        original = session.request

        def recording(url, method, *args, **kwargs):
            resp = original(url, method, *args, **kwargs)
            full = getattr(resp, "url", None) or url
            path, status = self.normalise(full), getattr(resp, "status_code", 0)
            ids = None
            if path.endswith("/events") and status == 200:
                ids = [e["id"] for e in resp.json().get("events", [])]
            self.calls.append((method, path, status, ids))
            return resp
        session.request = recording

    @staticmethod
    def normalise(url):
        """The path with ids and the project replaced, e.g. /v1/{project}/stacks/{name}/{id}."""
        path = urllib.parse.urlparse(url).path
        path = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "{id}", path)
        path = re.sub(r"/v1/[0-9a-f]{32}", "/v1/{project}", path)
        path = re.sub(r"/stacks/[^/]+/\{id\}", "/stacks/{name}/{id}", path)
        return path
