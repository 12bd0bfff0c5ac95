"""Where a submit's microseconds go inside the daemon, without any socket: the parts of the path a
connection thread runs for one one-image submit, timed in one process, interleaved.

Builds the daemon (``Daemon``: embedded bundle, x86_cpu board, trace store on, the API sockets in a
temporary folder) in this process and, round by round, times with this thread's CPU clock
(``time.thread_time``: what the path costs a core, not how long it waited for one):

- ``executor``: ``Executor.run(image)`` on the daemon's own executor (built for the board);
- ``executor_default``: ``Executor.run(image)`` on ``Executor(bundle)`` with its defaults, what
  bench/api_submit.py compares with;
- ``device_loop``: ``DeviceLoop.process`` + the deferred trace row, as the serving code calls it;
- ``api_checks``: the request's checks (header, deadline, tensors, ``check_inputs``);
- ``encode_reply``: one ``ok`` answer's JSON;
- ``answer_full``: ``ApiServer.answer`` on a received submit (checks, the direct path, the device
  loop, the answer handed to its connection) as a plain-socket connection thread runs it.

The trace writer's own thread is not counted here (bench/api_submit.py shows it per thread).
Prints one JSON document: per part the median and minimum microseconds per call over rounds.

    .venv/bin/python bench/api_answer_parts.py [--rounds 15] [--calls 200]
"""
import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from edgesplit.runtime.api import protocol
from edgesplit.runtime.daemon.config import load_daemon_config
from edgesplit.runtime.daemon.service import Daemon
from edgesplit.runtime.bundle.store import load_bundle
from edgesplit.runtime.default_bundle import default_bundle_path, load_heldout
from edgesplit.runtime.executor.executor import Executor


class _Replies:
    """The direct path's answers, handed to the job's connection (here: dropped)."""

    @staticmethod
    def send(job, code, message="", **fields):
        job.reply_to(protocol.encode_reply(job.request_id, code, message, **fields))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="es-parts-", dir="/tmp"))
    (folder / "edgesplit.toml").write_text('log_level = "warning"\n[model]\nboard = "x86_cpu"\n[traces]\npath = "%s"\n'
                                           '[api]\nsocket = "%s"\n' % (folder / "traces.db", folder / "api.sock"))
    daemon = Daemon(load_daemon_config(str(folder / "edgesplit.toml")))
    daemon.start()
    try:
        image = load_heldout()[0][:1]
        api, serving, executor = daemon.api, daemon.serving, daemon.executor
        frames = [bytes(f) if isinstance(f, bytes) else f.tobytes()
                  for f in protocol.encode_request("submit", 1, {"deadline_ms": None, "label": None}, {"*": image})]
        task_ids = iter(range(10 ** 9, 2 * 10 ** 9))
        replies = _Replies()

        def answer_full():
            api.answer(b"bench", frames, time.perf_counter(), replies, [], reply_to=lambda reply: None)
            while not daemon.jobs.idle():  # queued (the direct path stepped aside): let it finish
                time.sleep(0.0005)

        def api_checks():
            header = protocol.decode_header(frames[0])
            protocol.number_field(header, "deadline_ms", 0.001, 86400e3)
            api.handlers.check_inputs(protocol.decode_tensors(header, frames[1:], api.max_input_bytes))

        def device_loop():
            serving.loop.process(next(task_ids), api.handlers.check_inputs({"*": image}), None,
                                 arrival_s=time.perf_counter(), defer_trace=True, inputs_checked=True)
            serving.loop.write_deferred_trace()

        default_executor = Executor(load_bundle(default_bundle_path()))
        parts = {"executor": lambda: executor.run(image), "executor_default": lambda: default_executor.run(image),
                 "device_loop": device_loop, "api_checks": api_checks,
                 "encode_reply": lambda: protocol.encode_reply(
                     5, "ok", "", task_id=3, result=4, exit=1, cut=None, fallback=False, latency_ms=0.1,
                     met_deadline=True, policy_id="static:local-only", arm=None),
                 "answer_full": answer_full}
        for part in parts.values():  # warm-up; the direct path needs 16 short tasks behind it
            for _ in range(300):
                part()
        samples = {name: [] for name in parts}
        names = list(parts)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                start = time.thread_time()
                for _ in range(args.calls):
                    parts[name]()
                samples[name].append(1e6 * (time.thread_time() - start) / args.calls)
        direct = serving.inline_tasks
    finally:
        daemon.stopping.set()
        daemon.shutdown()
        shutil.rmtree(str(folder), ignore_errors=True)
    print(json.dumps({
        "bench": "api_answer_parts",
        "rounds": args.rounds, "calls_per_round": args.calls,
        "thread_cpu_us_per_call": {name: {"median": round(statistics.median(v), 1), "min": round(min(v), 1)}
                                   for name, v in samples.items()},
        "direct_path_tasks": direct,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
