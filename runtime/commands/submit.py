"""``edgesplit submit``: send inputs to the running daemon, or post late feedback for a finished task."""
import json
import math
import time

import numpy as np

from edgesplit.runtime.api.client import DEFAULT_WINDOW, ApiClient
from edgesplit.runtime.commands.api_socket import add_socket_arguments, socket_of
from edgesplit.runtime.commands.number_flags import POSITIVE
from edgesplit.runtime.commands.output import print_json
from edgesplit.runtime.errors import InputError
from edgesplit.runtime.inputs import read_npy


def register(commands) -> None:
    parser = commands.add_parser(
        "submit",
        description="Sends each row of --inputs (a .npy, batch axis first) as one task to the daemon's local API "
                    "and prints each answer: status, task id, predicted class, exit, cut (if offloaded), "
                    "fallback, latency. A full queue answers 'queue_full' at once. With --feedback TASK_ID "
                    "[--label N] [--rating X] it stores late feedback for a finished task in the trace "
                    "instead: its true label, the application's rating of the result (any finite number, "
                    "e.g. a QoE score, stored as given), or both.")
    add_socket_arguments(parser)
    parser.add_argument("--inputs", metavar="X.npy", help="inputs, one task per row of the first axis")
    parser.add_argument("--rows", type=int, default=None, help="send only the first N rows")
    parser.add_argument("--deadline-ms", type=float, default=None,
                        help="per-task deadline after arrival (default: the daemon's api.default_deadline_ms)")
    parser.add_argument("--labels", metavar="Y.npy", help="true labels, one per row, stored with each task")
    parser.add_argument("--period-ms", type=float, metavar="MS",
                        help="send one row every MS milliseconds, as a sensor would, each after the previous answer "
                             "(default: back to back, %d awaiting an answer at a time)" % DEFAULT_WINDOW)
    parser.add_argument("--feedback", type=int, metavar="TASK_ID", help="post late feedback for this task")
    parser.add_argument("--label", type=int, help="with --feedback: the task's true label")
    parser.add_argument("--rating", type=float, metavar="X",
                        help="with --feedback: the application's rating of the result (any finite number)")
    parser.add_argument("--json", action="store_true", help="print each answer as one JSON object on its own line (JSON Lines)")
    parser.set_defaults(handler=run_submit, number_flag_ranges={"--period-ms": POSITIVE})


def _load(path: str, what: str) -> np.ndarray:
    return read_npy(path, what)


def _answers(client: ApiClient, inputs: np.ndarray, labels, count: int, deadline_ms, period_s=None):
    """(row, answer) per row, sent DEFAULT_WINDOW at a time (submit_many): about one round trip per
    window instead of one per row, and each window's answers printed as it comes back. With ``period_s`` one row
    arrives every period instead (a late answer delays the next arrival, never skips it)."""
    if period_s is not None:
        started = time.monotonic()
        for row in range(count):
            wait = started + row * period_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            label = None if labels is None else int(labels[row])
            yield row, client.submit(inputs[row:row + 1], deadline_ms=deadline_ms, label=label)
        return
    for start in range(0, count, DEFAULT_WINDOW):
        stop = min(count, start + DEFAULT_WINDOW)
        window_labels = None if labels is None else [int(label) for label in labels[start:stop]]
        for offset, answer in enumerate(client.submit_many(inputs[start:stop], deadline_ms=deadline_ms,
                                                           labels=window_labels)):
            yield start + offset, answer


def run_submit(args) -> int:
    if args.feedback is not None:
        if (args.label is None and args.rating is None) or args.inputs:
            raise InputError("--feedback TASK_ID needs --label N, --rating X or both (and no --inputs)")
        if args.rating is not None and not math.isfinite(args.rating):
            raise InputError("--rating must be a finite number, got %r" % args.rating)
        with ApiClient(socket_of(args), timeout_s=args.timeout) as client:
            answer = client.feedback(args.feedback, label=args.label, rating=args.rating)
        if args.json:
            print_json(answer.to_dict())
        else:
            print("task %d: %s%s" % (args.feedback, answer.status, " (%s)" % answer.message if answer.message else ""))
        return 0 if answer.ok else 1
    if not args.inputs:
        raise InputError("give --inputs X.npy (or --feedback TASK_ID --label N / --rating X)")
    inputs = _load(args.inputs, "--inputs")
    labels = _load(args.labels, "--labels") if args.labels else None
    count = inputs.shape[0] if args.rows is None else min(args.rows, inputs.shape[0])
    if labels is not None and labels.shape[:1] < (count,):
        raise InputError("--labels %s has %d labels for %d rows of --inputs: give one label per row"
                         % (args.labels, labels.shape[0] if labels.ndim else 0, count))
    failures = correct = answered = 0
    with ApiClient(socket_of(args), timeout_s=args.timeout) as client:
        for row, answer in _answers(client, inputs, labels, count, args.deadline_ms,
                                    None if args.period_ms is None else args.period_ms / 1e3):
            failures += int(not answer.ok)
            if answer.ok and labels is not None:
                answered += 1
                correct += int(answer.result == int(labels[row]))
            if args.json:
                print(json.dumps(answer.to_dict()), flush=True)
            elif answer.ok:
                where = "peer at cut %d" % answer.cut if answer.cut is not None else "board"
                print("row %d: task %d -> class %d (exit %d, %s%s, %.2f ms)" % (
                    row, answer.task_id, answer.result, answer.exit, where, ", FALLBACK" if answer.fallback else "",
                    answer.latency_ms))
            else:
                print("row %d: %s: %s" % (row, answer.status, answer.message))
    if labels is not None and not args.json and answered:
        print("accuracy: %d of %d answered rows right (%.1f%%)" % (correct, answered, 100.0 * correct / answered))
    return 0 if failures == 0 else 1
