"""The daemon's Prometheus metrics, in the text exposition format (no client library:
a handful of counters and one histogram)."""
from collections import OrderedDict

ROUND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
STATES = ("applied", "absent", "down", "pending", "refused", "invalid", "error")


class Metrics(object):
    def __init__(self):
        self.rounds = 0
        self.round_seconds = 0.0
        self.buckets = [0] * len(ROUND_BUCKETS)
        self.writes = 0
        self.repairs = 0
        self.failures = 0
        self.failing = False
        self._states = None

    def observe_round(self, result, gateways):
        """After each round: ``result`` (RoundResult), ``gateways`` (the snapshot's
        gateway statuses). Writes in a round after which every gateway is in the state it
        was in before are drift repairs: something outside changed what was already right."""
        self.rounds += 1
        self.failing = result.failure is not None
        self.failures += int(self.failing)
        self.round_seconds += result.duration
        for i, bound in enumerate(ROUND_BUCKETS):
            if result.duration <= bound:
                self.buckets[i] += 1
        self.writes += result.writes
        states = {st["name"]: st["state"] for st in gateways}
        if result.writes and self._states is not None and states == self._states:
            self.repairs += result.writes
        self._states = states

    def lines(self, gateways, xapi_configured, xapi_connected, extra=()):
        """The exposition lines; ``extra``: more (name, kind, help, samples) metrics."""
        out = []

        def metric(name, kind, help_text, samples):
            out.append("# HELP %s %s" % (name, help_text))
            out.append("# TYPE %s %s" % (name, kind))
            for labels, value in samples:
                out.append("%s%s %s" % (name, labels, _number(value)))

        counts = OrderedDict((s, 0) for s in STATES)
        for st in gateways:
            counts[st["state"]] = counts.get(st["state"], 0) + 1
        metric("xgw_gateways", "gauge", "Gateways by state.",
               [('{state="%s"}' % s, n) for s, n in counts.items()])
        metric("xgw_reconcile_rounds_total", "counter", "Reconcile rounds run.",
               [("", self.rounds)])
        samples = [('{le="%s"}' % _number(b), n) for b, n in zip(ROUND_BUCKETS, self.buckets)]
        samples.append(('{le="+Inf"}', self.rounds))
        out.append("# HELP xgw_reconcile_round_seconds How long reconcile rounds take.")
        out.append("# TYPE xgw_reconcile_round_seconds histogram")
        for labels, value in samples:
            out.append("xgw_reconcile_round_seconds_bucket%s %d" % (labels, value))
        out.append("xgw_reconcile_round_seconds_sum %s" % _number(self.round_seconds))
        out.append("xgw_reconcile_round_seconds_count %d" % self.rounds)
        metric("xgw_reconcile_failures_total", "counter",
               "Reconcile rounds that failed (retried with backoff).", [("", self.failures)])
        metric("xgw_reconcile_failing", "gauge", "1 while the last reconcile round failed.",
               [("", int(self.failing))])
        metric("xgw_kernel_writes_total", "counter",
               "Changes made to addresses, routes, rules and sysctls.", [("", self.writes)])
        metric("xgw_drift_repairs_total", "counter",
               "Changes that put back what something else removed or altered.",
               [("", self.repairs)])
        metric("xgw_xapi_connected", "gauge",
               "1 when the XAPI event watch is connected (absent without XAPI).",
               [("", int(xapi_connected))] if xapi_configured else [])
        for name, kind, help_text, samples in extra:
            metric(name, kind, help_text, samples)
        return out


def _number(value):
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)
