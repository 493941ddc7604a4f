"""A container task that idles until SIGTERM; with ``PROTECT=1`` it first takes scale-in protection through the
ECS agent endpoint, as the long-jobs consumer does while it works."""

import json
import os
import signal
import sys
import urllib.request

if os.environ.get("PROTECT") == "1":
    request = urllib.request.Request(
        os.environ["ECS_AGENT_URI"] + "/task-protection/v1/state",
        data=json.dumps({"ProtectionEnabled": True, "ExpiresInMinutes": 60}).encode(),
        method="PUT",
    )
    urllib.request.urlopen(request, timeout=5).close()
    print("protected", flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
signal.pause()
