"""A Prometheus textfile (node_exporter ``--collector.textfile.directory``) with the daemon's figures.

Written atomically (temporary sibling, fsync, rename) so the collector never reads half a file.
"""
from typing import Any, Dict, List, Optional

from edgesplit.policies_lite.files import atomic_write


def _line(lines: List[str], name: str, kind: str, help_text: str, value: Optional[float],
          labels: str = "") -> None:
    if value is None:
        return
    lines.append("# HELP edgesplit_%s %s" % (name, help_text))
    lines.append("# TYPE edgesplit_%s %s" % (name, kind))
    lines.append("edgesplit_%s%s %s" % (name, labels, repr(float(value))))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def render(status: Dict[str, Any]) -> str:
    """Prometheus text exposition of ``Daemon.status()``."""
    lines = []  # type: List[str]
    tasks, queue, peer = status["tasks"], status["queue"], status["peer"]
    _line(lines, "up", "gauge", "1 while the daemon serves.", 1.0 if status["state"] == "serving" else 0.0)
    _line(lines, "uptime_seconds", "gauge", "Seconds since the daemon started.", status["uptime_s"])
    _line(lines, "tasks_answered_total", "counter", "Tasks run to a result.", tasks["ok"])
    _line(lines, "tasks_fallback_total", "counter", "Tasks finished locally because the peer failed.",
          tasks["fallbacks"])
    _line(lines, "tasks_offloaded_total", "counter", "Tasks the peer finished.", tasks["offloaded"])
    _line(lines, "tasks_missed_deadline_total", "counter", "Answered tasks later than their deadline.",
          tasks["missed_deadline"])
    _line(lines, "tasks_errors_total", "counter", "Tasks that failed in the daemon.", tasks["errors"])
    lines.append("# HELP edgesplit_requests_refused_total Requests refused without running, by status.")
    lines.append("# TYPE edgesplit_requests_refused_total counter")
    for reason in ("queue_full", "draining", "expired", "bad_request"):
        count = tasks["expired"] if reason == "expired" else status["refused"].get(reason, 0)
        lines.append('edgesplit_requests_refused_total{status="%s"} %d' % (reason, count))
    _line(lines, "task_latency_seconds_sum", "counter", "Sum of answered task latencies.", tasks["latency_sum_s"])
    _line(lines, "queue_length", "gauge", "Requests waiting.", queue["length"])
    _line(lines, "queue_capacity", "gauge", "Requests that may wait (api.queue_size).", queue["capacity"])
    _line(lines, "peer_alive", "gauge", "1 when the peer answers.", 1.0 if peer["alive"] else 0.0)
    _line(lines, "link_bandwidth_bps", "gauge", "Estimated bandwidth to the peer, bits/s.", peer["bandwidth_bps"])
    _line(lines, "link_rtt_seconds", "gauge", "Estimated round trip to the peer.", peer["rtt_s"])
    traces = status.get("traces", {})
    if "writable" in traces:
        _line(lines, "traces_writable", "gauge", "1 while the trace database takes writes (0: disk full or failing).",
              1.0 if traces["writable"] else 0.0)
        _line(lines, "traces_backlog_rows", "gauge", "Trace rows waiting in memory for the disk.",
              traces["backlog_rows"])
        _line(lines, "traces_unwritten_rows_total", "counter", "Trace rows lost because the disk refused them.",
              traces["unwritten_rows"])
    policy = status["policy"]
    _line(lines, "policy_info", "gauge", "The policy serving now (value always 1).", 1.0,
          '{policy_id="%s",name="%s"}' % (_escape(str(policy.get("policy_id"))), _escape(str(policy.get("name")))))
    return "\n".join(lines) + "\n"


def write_textfile(path: str, text: str) -> None:
    # 0644: node_exporter reads it as another user.
    with atomic_write(path, binary=False, mode_bits=0o644) as handle:
        handle.write(text)
