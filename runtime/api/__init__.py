"""The local API applications on the board use: a ZeroMQ ipc socket and a plain Unix stream socket
beside it (``api.sock.plain``, the same messages), their protocol, a Python client.

    from edgesplit.runtime.api import ApiClient
    with ApiClient("/run/edgesplit/api.sock") as api:     # the plain socket when offered, else ZeroMQ
        answer = api.submit(image, deadline_ms=200)      # ApiAnswer: status, task_id, result, exit, ...
        answers = api.submit_many(images)                 # one task per row, a window of requests in flight
        api.feedback(answer.task_id, label=7)             # late label, lands in the trace
        api.feedback(answer.task_id, rating=4.5)          # and/or a rating (any finite number)
        print(api.status()["queue"])
"""
from edgesplit.runtime.api.client import ApiAnswer, ApiClient, ApiUnavailable
from edgesplit.runtime.api.protocol import STATUSES

__all__ = ["ApiAnswer", "ApiClient", "ApiUnavailable", "STATUSES"]
