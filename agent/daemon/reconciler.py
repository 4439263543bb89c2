"""The reconciler: the only writer of addresses, routes, iptables and ip_forward.

``Reconciler.run_round`` runs in one thread at a time, the kernel's owner (``KernelThread``:
its worker, or the netlink monitor's thread for a round an event starts while the kernel
is idle, see ``Engine.request_here``): under the xtables lock it
observes (netlink mirror, our chains, ip_forward), plans (core.planner, pure), applies
(netlink verbs, one iptables commit per changed table, sysctl), and records the outcome.
A round that finds nothing to change writes nothing. ``Engine`` is its asyncio side:
events from udev, netlink, timers and reloads land in one pending set, coalesced, and
each round serves everything that piled up while the previous one ran.

A round never raises: one that fails (the xtables lock held by another program, a full
state directory, a bug) is logged when rounds start failing and when they recover, put in
the snapshot, and retried by the Engine with backoff. After each round the reconciler
publishes an immutable ``Snapshot``; everything outside the kernel thread (status.json,
the API's status, health and metrics) reads that, never the reconciler's own fields.
"""
import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections import OrderedDict, namedtuple
from concurrent.futures import ThreadPoolExecutor

from agent.core import links as linksmod
from agent.core import model
from agent.core import planner as P
from agent.core import rules as rulesmod
from agent.core import tunnels as tunnelsmod
from agent.core.desired import network_of
from agent.errors import AgentError, StateError, TransientKernelError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
MAX_BACKOFF = 60.0   # seconds between retries of a failing round, at most
IDLE_RELEASE = 0.25  # seconds without a round before libiptc's copies are freed

# ``failure``: the AgentError (or bug) that failed the round, else None
RoundResult = namedtuple("RoundResult", "ops writes commits errors duration failure")


class Snapshot(namedtuple("Snapshot", "gateways summary rounds writes commits last failure "
                                      "failures links tunnels")):
    """What the reconciler publishes after each round, for other threads to read.

    ``gateways``: tuple of gateway status dicts (never changed once published; the same
    tuple again while the reconciler's statuses are the same, so that readers can keep
    what they made of it: agent.api.rendered);
    ``links``: tuple of link status dicts, one per network that declares a VLAN link
    (network, name, bridge, parent, parent_name, tag, state, reason, since);
    ``tunnels``: ((network uuid, (state, reason)), ...): what the OVS writer made of this
    host's VXLAN ports of each spanning network (applied, waiting, error);
    ``last``: the last RoundResult or None; ``failure``: None, or a dict (code, message,
    since, consecutive) while rounds fail; ``failures``: failed rounds in all."""
    __slots__ = ()

    def round_dict(self):
        if self.last is None:
            return None
        last = dict(self.last._asdict())
        last["failure"] = None if self.failure is None else self.failure["code"]
        return last


Snapshot.__new__.__defaults__ = ((), ())


def fields(**kw):
    """``extra=`` for structured log fields (journal: BRIDGE=, GATEWAY=, NETWORK=,
    OPERATION=); a field given as None is left out."""
    return {"xgw_fields": kw}


class Reconciler(object):
    def __init__(self, source, view, netlink, iptables, sysctl, lock, statefile,
                 clock=time.monotonic, wallclock=time.time, announce=None, ovs=None,
                 hold_events=None, fold_events=None):
        self.source = source
        # hold_events(): a context manager in which the netlink events stay unread
        # (NetlinkMonitor.held): the round's writes do not share the interpreter with
        # decoding their own echoes
        self.hold_events = hold_events
        # fold_events(): once the writes are done, the events queued meanwhile folded into
        # the view before the outcome is recorded (NetlinkMonitor.fold_pending: in the
        # monitor's own thread, which reads none while it runs a round; elsewhere the
        # monitor folds them itself). A bridge set up while its round planned is then
        # recorded up, applied, by this round rather than the next.
        self.fold_events = fold_events
        # announce(ifindex, address): a gratuitous ARP once a gateway address is added,
        # so that neighbours drop the MAC of a host that served it before (a takeover)
        self.announce = announce
        # the OVS writer (agent.adapters.ovsdb.Ovsdb) on an Open vSwitch host, else None:
        # the VLAN links' patch ports, written after the kernel, outside the xtables lock
        self.ovs = ovs
        self.view = view
        self.netlink = netlink
        self.iptables = iptables
        self.sysctl = sysctl
        self.lock = lock
        self.statefile = statefile
        self.clock = clock
        self.wallclock = wallclock
        self.owned, self.ip_forward_was = statefile.load()
        self._saved = (dict(self.owned), self.ip_forward_was)
        self._network = None   # (inputs key, NetworkPlan) of the last round
        self.accepted = set()
        self.status = OrderedDict()   # name -> dict (published in status.json)
        self.link_status = OrderedDict()   # child network uuid -> dict (status.json too)
        self.tunnel_results = {}   # spanning network uuid -> (state, reason) of its ports here
        self._no_tunnels = False   # the last sync wanted no tunnel port and left none
        self._links_recorded = None
        self.rounds = 0
        self.writes = 0
        self.last = None
        self._vias = (None, {})   # (netlink mirror generation, {source: host address})
        self.failure = None   # dict while rounds fail (see Snapshot)
        self.failures = 0
        # (inputs, plan) of the last round: the planner is pure, so the same inputs (the
        # very observation objects the adapter hands back for an unchanged table) give
        # the same plan; and the plan _record last recorded completely, without errors.
        self._last_plan = None
        self._recorded = None
        self._added = []       # AddAddress operations of this round that succeeded
        self._applied_at = None   # monotonic time the round's kernel writes were done
        self._published_status = None
        self.published = self._snapshot()

    # ---- one round (kernel thread) -----------------------------------------------------
    def run_round(self):
        """One round; returns its RoundResult and never raises (see the module's text)."""
        started = self.clock()
        plan, errors, problem, link_writes, tunnel_writes = None, {}, None, 0, 0
        self._added = []
        self._applied_at = None
        try:
            for attempt in range(1, MAX_ATTEMPTS + 1):
                try:
                    with self.lock:
                        plan = self._plan()
                        try:
                            with self.hold_events() if self.hold_events else _unheld():
                                errors = self._apply(plan)
                        finally:
                            # still under the lock, after the gateways were stamped
                            self.iptables.settle()
                    break
                except TransientKernelError as exc:
                    plan = None
                    if attempt == MAX_ATTEMPTS:
                        raise
                    log.info("retrying the round (%s), attempt %d", exc, attempt + 1)
            link_results, link_writes = self._apply_links(plan)
            tunnel_writes = self._apply_tunnels()
            if self.fold_events is not None:   # last, after the OVSDB writers' waits too
                self.fold_events()
            problem = self._record(plan, errors, link_results)
        except AgentError as exc:
            problem = exc
        except Exception as exc:  # noqa: B902 - a bug must not stop the enforcing
            log.exception("reconcile round crashed")
            problem = exc
        # Announced once the gateway is complete (rules committed, status recorded): a
        # frame per address is no part of the gateway, and its socket and sysfs read cost
        # ~0.1 ms each, 1,000 of them at a start-up.
        for op in self._added:
            self._announce(op)
        self.rounds += 1
        ops = (len(plan.ops) if plan is not None else 0) + link_writes + tunnel_writes
        commits = sum(1 for t in rulesmod.TABLES if plan.table_ops(t)) if plan else 0
        self.writes += ops
        self.last = RoundResult(ops=ops, writes=ops, commits=commits, errors=len(errors),
                                duration=self.clock() - started, failure=problem)
        self._note_failure(problem)
        if ops:
            log.info("round %d: %d operations in %.1f ms%s", self.rounds, ops,
                     self.last.duration * 1000, ", %d failed" % len(errors) if errors else "")
        self.published = self._snapshot()
        return self.last

    def release(self):
        """Free libiptc's copies of the tables and give their pages back (~3 MB at 1,000
        gateways): the Engine calls it in the kernel thread once rounds have stopped
        coming for IDLE_RELEASE seconds. Kept between rounds that follow each other
        closely (bridges arriving one after another), a copy the last walk loaded spares
        the next commit a reload (~0.1 ms a table at 50 gateways, ~1 ms at 1,000).

        First the tables whose observation was settled after a commit are walked, there
        and then, off any bridge's latency (Iptables.confirm); True when that found them
        changed: the Engine runs a round."""
        changed = self.iptables.confirm()
        self.iptables.release(trim=True)
        return changed

    def _note_failure(self, problem):
        """Keep ``failure`` and log at the edges: the first failure, a new reason, the
        recovery; a failure that repeats goes to the debug log only."""
        old = self.failure
        if problem is None:
            if old is not None:
                log.info("reconcile rounds succeed again (after %d failed)", old["consecutive"])
            self.failure = None
            return
        self.failures += 1
        code = getattr(problem, "code", "internal_error")
        message = str(problem) or repr(problem)
        if old is None:
            log.error("reconcile rounds fail: %s; retrying with backoff (the kernel keeps "
                      "what was applied)", message, extra=fields(operation="round"))
        elif old["message"] != message:
            log.error("reconcile rounds still fail, now: %s", message,
                      extra=fields(operation="round"))
        else:
            log.debug("round failed again (%d in a row): %s", old["consecutive"] + 1, message)
        self.failure = {"code": code, "message": message,
                        "since": old["since"] if old else self.wallclock(),
                        "consecutive": old["consecutive"] + 1 if old else 1}

    def _snapshot(self):
        last = getattr(self, "published", None)
        if last is not None and self._published_status is self.status:
            gateways, summary = last.gateways, last.summary
        else:
            gateways, summary = tuple(self.status.values()), self.summary()
        self._published_status = self.status  # _record replaces it, never changes it
        return Snapshot(gateways=gateways, summary=summary,
                        rounds=self.rounds, writes=self.writes,
                        commits=getattr(self.iptables, "commits", 0), last=self.last,
                        failure=self.failure, failures=self.failures,
                        links=tuple(self.link_status.values()),
                        tunnels=tuple(sorted(self.tunnel_results.items())))

    def heartbeat(self):
        """Monotonic time of the round in flight's last sign of life (waiting on the
        xtables lock counts: that is not stuck), or None."""
        return getattr(self.lock, "polled", None)

    def _plan(self):
        tables = {t: self.iptables.observe(t) for t in rulesmod.TABLES}
        generation, links, addresses, routes = self.view.snapshot()
        ip_forward = self.sysctl.ip_forward()
        # The network half of the plan only changes with the config, the netlink mirror
        # or our own records: a periodic check re-plans just iptables and ip_forward.
        # The records are compared by value (the dicts _record makes hold the plan's own
        # record objects, so that is quick); the key by the versions.
        key = (self.source.version, generation)
        inputs = (key, self.owned, self.accepted)
        last = self._last_plan
        if last is not None and last[0] == ip_forward and _same(last[1], inputs) and \
                all(tables[t] is last[2][t] for t in rulesmod.TABLES):
            return last[3]
        observed = P.Observed(links=links, addresses=addresses, routes=routes, tables=tables,
                              ip_forward=ip_forward)
        desired = self.source.gateways()
        network = self._network
        if network is None or not _same(network[0], inputs):
            # a new bridge, its address, a change of state: planned for what changed alone
            # when the planner can (plan_network's ``last``), else in full
            network = self._network = (inputs, P.plan_network(
                desired, observed, self.owned, self.accepted,
                last=network[1] if network is not None else None))
        links = self.source.links() if hasattr(self.source, "links") else None
        # the rules, too, for the gateways that became live alone when the planner can
        # (plan's ``last``: the same tables as the last plan, which had every rule in place)
        plan = P.plan(desired, observed, self.owned, self.accepted, network=network[1],
                      links=links, last=last[3] if last is not None else None)
        self._last_plan = (ip_forward, inputs, tables, plan)
        return plan

    def _apply(self, plan):
        """Apply ``plan``; returns {bridge or '*': AgentError} for what failed.

        The iptables commits go first: the first address on a bridge just set up waits
        for the kernel's RTNL lock (held by the link's own set-up for up to a few ms),
        and the commits, which do not take it, run in that time instead of after it."""
        errors = {}
        networks = _Networks(self, plan)  # log fields, made when a line first needs one
        for table in rulesmod.TABLES:
            ops = plan.table_ops(table)
            if not ops:
                continue
            try:
                self.iptables.apply(table, ops)
                log.debug("iptables %s: committed %d operations", table, len(ops))
            except TransientKernelError:
                raise
            except AgentError as exc:
                bridges = set()
                for op in ops:
                    key = getattr(op, "key", None) or getattr(getattr(op, "spec", None), "key", None)
                    bridges.add(rulesmod.bridge_of(key) if key else "*")
                for bridge in bridges:
                    errors[bridge] = exc
                # the rules of one bridge alone: the journal names it (and its network)
                bridge = next(iter(bridges)) if len(bridges) == 1 and "*" not in bridges else None
                log.error("iptables %s: %s", table, exc,
                          extra=fields(bridge=bridge, network=networks.get(bridge),
                                       operation="commit"))
        netlink_ops = plan.netlink_ops()
        # one batch: the kernel acknowledges each request, so a failure is its gateway's
        results = self.netlink.apply(netlink_ops) if netlink_ops else ()
        if any(isinstance(op, P.EnableForwarding) for op in plan.ops):
            try:
                if self.ip_forward_was is None:
                    self.ip_forward_was = False
                self.sysctl.set_ip_forward(True)
                log.info("enabled IPv4 forwarding", extra=fields(operation="ip_forward"))
            except AgentError as exc:
                log.error("cannot enable IPv4 forwarding: %s", exc)
                errors["*"] = exc
        # The kernel has acknowledged every write: the moment the gateways are complete
        # (their since_monotonic), before the log lines about them.
        self._applied_at = self.clock()
        for op, exc in zip(netlink_ops, results):
            what = getattr(op, "address", None) or op.network
            extra = fields(bridge=op.bridge, network=networks.get(op.bridge),
                           operation=type(op).__name__)
            if exc is None:
                log.info("%s %s on %s", type(op).__name__, what, op.bridge, extra=extra)
                if isinstance(op, P.AddAddress):
                    self._added.append(op)   # announced at the end of the round
            else:
                log.error("%s on %s failed: %s", type(op).__name__, op.bridge, exc, extra=extra)
                errors[op.bridge] = exc
        return errors

    def _announce(self, op):
        """The gratuitous ARP for an address just added; a failure to send is logged and
        changes nothing else (the address is in place; neighbours will ARP anew)."""
        if self.announce is None:
            return
        try:
            self.announce(op.ifindex, op.address.ip)
            log.debug("gratuitous ARP for %s on %s", op.address.ip, op.bridge)
        except AgentError as exc:
            log.warning("gratuitous ARP on %s failed: %s", op.bridge, exc,
                        extra=fields(bridge=op.bridge, operation="garp"))

    def _networks(self, plan):
        """{bridge: XAPI network uuid} of the gateways this plan puts in place."""
        gateways = self.source.gateways()
        return {st.bridge: network_of(gateways.get(name)) for name, st in plan.status.items()
                if st.state != P.REFUSED}

    def _apply_links(self, plan):
        """Make the plan's VLAN links in OVS and no other link ports: ({child network
        uuid: (state, reason)} or None without the OVS writer, writes made). An OVSDB
        that does not answer puts the accepted links in ``error`` with its reason; the
        gateways' round goes on regardless."""
        if self.ovs is None:
            return None, 0
        links = plan.links
        try:
            results, writes = self.ovs.reconcile_links(links)
        except AgentError as exc:
            if links:
                log.debug("links not reconciled: %s", exc)
            return {link.network: ("error", str(exc)) for link in links}, 0
        except Exception as exc:  # noqa: B902 - a bug in the writer must not stop gateways
            log.exception("reconciling the VLAN links crashed")
            return {link.network: ("error", "internal error: %s" % exc) for link in links}, 0
        for text in writes:
            log.info("OVS: %s", text, extra=fields(operation="link"))
        return results, len(writes)

    def _apply_tunnels(self):
        """Make this host's VXLAN ports of the networks that span the pool
        (PlacedSource.tunnel_ports: the pool's star, re-shaped by every change of the
        pool's records) through the OVS writer, repair them, and remove the daemon's other
        tunnel ports; never a port it did not make. While the pool or this host is not
        known, the ports stay as they are. Records {network uuid: (state, reason)};
        returns the number of writes."""
        wanted = getattr(self.source, "tunnel_ports", None)
        ports = wanted() if wanted is not None else None
        if ports is None:
            return 0
        if not ports and self._no_tunnels:
            return 0   # none wanted, and none of ours left since the last sync: no call
        networks = sorted(set(p.network for p in ports))
        if self.ovs is None:
            self.tunnel_results = {n: ("error", "this host runs Linux bridges (network.conf):"
                                       " VXLAN ports need Open vSwitch") for n in networks}
            self._no_tunnels = not ports
            return 0
        try:
            results, writes = self.ovs.sync_ports(tunnelsmod.KIND, [p.spec() for p in ports])
        except AgentError as exc:
            if networks:
                log.debug("tunnels not reconciled: %s", exc)
            self.tunnel_results = {n: ("error", str(exc)) for n in networks}
            return 0
        except Exception as exc:  # noqa: B902 - a bug in the writer must not stop gateways
            log.exception("reconciling the tunnels crashed")
            self.tunnel_results = {n: ("error", "internal error: %s" % exc) for n in networks}
            return 0
        for text in writes:
            log.info("OVS: %s", text, extra=fields(operation="tunnel"))
        self.tunnel_results = dict(results)
        self._no_tunnels = not ports
        return len(writes)

    def _record(self, plan, errors, link_results=None):
        """Record the outcome; returns the StateError when state.json could not be
        written (the status is recorded all the same; the next round writes it again)."""
        self._record_links(plan, link_results)
        if not errors and self._recorded is plan:
            return None  # recorded already, nothing failed then or now: the same status
        self._recorded = None
        problem = None
        now, mono = self.wallclock(), self._applied_at or self.clock()
        failed_owned = {b for b in errors if b in plan.owned}
        owned = {b: a for b, a in plan.owned.items() if b not in failed_owned}
        for bridge in failed_owned:
            if bridge in self.owned:
                owned[bridge] = self.owned[bridge]
        self.owned = owned
        if (owned, self.ip_forward_was) != self._saved:
            try:
                self.statefile.save(owned, self.ip_forward_was)
                self._saved = (dict(owned), self.ip_forward_was)
            except StateError as exc:
                problem = exc
        self.accepted = set(n for n, s in plan.status.items() if s.state != P.REFUSED)

        gateways = self.source.gateways()
        placed = self.source.placement() if hasattr(self.source, "placement") else {}
        status = OrderedDict()
        for name, st in plan.status.items():
            gw = gateways.get(name)
            error = errors.get(st.bridge) or errors.get("*")
            state, reason = st.state, st.reason
            if state == P.PENDING:
                if error:
                    state = "error"
                else:   # applied once the bridge is up: the mirror says how it is now
                    state, reason = P.done_status(st, self.view.link(st.bridge))[2:]
            if state != "error":
                error = None
            old = self.status.get(name)
            unchanged = old is not None and old["state"] == state and old["reason"] == reason
            status[name] = {
                "name": name, "bridge": st.bridge,
                "address": str(gw.address) if gw else None,
                "nat": gw.nat if gw else None,
                "inbound": [model.format_inbound((n,)) for n in gw.inbound] if gw else [],
                "routes": self._inbound_routes(gw) if gw else [],
                "source": gw.source if gw else None,
                "state": state, "reason": reason,
                "error": str(error) if error else None,
                "since": old["since"] if unchanged else now,
                "since_monotonic": old["since_monotonic"] if unchanged else mono,
            }
            status[name].update(_placement(placed.get(name)))
            if not unchanged:
                _log_state(name, st.bridge, state, reason, error, network_of(gw))
        elsewhere = self.source.elsewhere() if hasattr(self.source, "elsewhere") else {}
        for name, (gw, decision) in sorted(elsewhere.items()):
            state = decision.state
            reason = ("served by %s (%s): %s" % (decision.host.name, decision.host.uuid,
                                                 decision.reason) if decision.host else
                      decision.reason)
            old = self.status.get(name)
            unchanged = old is not None and old["state"] == state and old["reason"] == reason
            status[name] = {"name": name, "bridge": gw.bridge, "address": str(gw.address),
                            "nat": gw.nat, "inbound": [], "routes": [], "source": gw.source,
                            "state": state, "reason": reason, "error": None,
                            "since": old["since"] if unchanged else now,
                            "since_monotonic": old["since_monotonic"] if unchanged else mono}
            status[name].update(_placement(decision))
            if not unchanged:
                _log_state(name, gw.bridge, state, reason, None, network_of(gw))
        for name, entry in sorted(self.source.invalid().items()):
            bridge, reason = entry
            old = self.status.get(name)
            unchanged = old is not None and old["state"] == "invalid" and old["reason"] == reason
            status[name] = {"name": name, "bridge": bridge, "address": None, "nat": None,
                            "inbound": [], "routes": [], "source": None, "state": "invalid", "reason": reason,
                            "error": None, "since": old["since"] if unchanged else now,
                            "since_monotonic": old["since_monotonic"] if unchanged else mono}
            status[name].update(_placement(None))
            if not unchanged:
                log.error("not applied: %s", reason,
                          extra=fields(gateway=name, bridge=bridge, operation="state",
                                       network=getattr(entry, "network", None)))
        self.status = status
        if not errors and problem is None:
            self._recorded = plan
        return problem

    def _record_links(self, plan, results=None):
        """The status of every declared link: core.links' verdict, and for the accepted
        ones the OVS writer's ``results`` ({network uuid: (state, reason)}) where given.
        A state that changes is logged once (refused and invalid ones as errors)."""
        if results is None and self._links_recorded is plan:
            return  # the same verdicts as recorded last round
        self._links_recorded = plan if results is None else None
        results = results or {}
        now, mono = self.wallclock(), self.clock()
        status = OrderedDict()
        for uuid, st in plan.link_status.items():
            state, reason = st.state, st.reason
            if uuid in results:
                state, reason = results[uuid]
            old = self.link_status.get(uuid)
            unchanged = old is not None and (old["state"], old["reason"], old["tag"],
                                             old["parent"]) == (state, reason, st.tag,
                                                                st.parent)
            entry = st._replace(state=state, reason=reason).as_dict()
            entry["since"] = old["since"] if unchanged else now
            entry["since_monotonic"] = old["since_monotonic"] if unchanged else mono
            status[uuid] = entry
            if not unchanged:
                extra = fields(bridge=st.bridge, network=uuid, operation="link")
                what = "link of network %s (%s) to %s, tag %s" % (
                    st.name, uuid, st.parent_name or st.parent or "?", st.tag or "?")
                if state in (linksmod.INVALID, linksmod.REFUSED, "error"):
                    log.error("%s %s: %s", what, state, reason, extra=extra)
                else:
                    log.info("%s: %s%s", what, state, " (%s)" % reason if reason else "",
                             extra=extra)
        for uuid, old in self.link_status.items():
            if uuid not in status:
                log.info("link of network %s (%s) dropped", old["name"], uuid,
                         extra=fields(bridge=old["bridge"], network=uuid, operation="link"))
        self.link_status = status

    def _inbound_routes(self, gw):
        """For each inbound source of ``gw``: the host address on the way to it and the
        route a machine there adds to reach the subnet. Looked up again only when the
        netlink mirror changed (an idle round does no lookup)."""
        if not gw.inbound:
            return []
        generation, vias = self._vias
        if generation != self.view.generation:
            vias = {}
            self._vias = (self.view.generation, vias)
        routes = []
        for source in gw.inbound:
            if source not in vias:
                vias[source] = self.netlink.source_address(source)
            via = vias[source]
            routes.append({
                "source": model.format_inbound((source,)),
                "via": str(via) if via else None,
                "commands": model.inbound_routes(gw.network, via) if via else {},
            })
        return routes

    def summary(self):
        counts = OrderedDict()
        for st in self.status.values():
            counts[st["state"]] = counts.get(st["state"], 0) + 1
        parts = ", ".join("%d %s" % (n, s) for s, n in counts.items())
        text = "%d gateway%s%s" % (len(self.status), "" if len(self.status) == 1 else "s",
                                   ": " + parts if parts else "")
        if self.link_status:
            states = OrderedDict()
            for st in self.link_status.values():
                states[st["state"]] = states.get(st["state"], 0) + 1
            text += "; %d link%s: %s" % (len(self.link_status), "" if len(self.link_status)
                                         == 1 else "s", ", ".join("%d %s" % (n, s) for s, n
                                                                  in states.items()))
        return text


def _same(a, b):
    """Whether two (key, owned, accepted) plan inputs are the same (by value)."""
    return a[0] == b[0] and (a[1] is b[1] or a[1] == b[1]) and \
        (a[2] is b[2] or a[2] == b[2])


@contextlib.contextmanager
def _unheld():
    yield


def _placement(decision):
    """The status fields that say which pool host serves a gateway and why (all None
    while placement is not in force: a single host, or the pool not known yet)."""
    if decision is None:
        return {"host": None, "host_name": None, "placement": None}
    return decision.as_dict()


def _log_state(name, bridge, state, reason, error, network=None):
    extra = fields(gateway=name, bridge=bridge, network=network, operation="state")
    if state == P.REFUSED:
        log.error("gateway %s on %s refused: %s", name, bridge, reason, extra=extra)
    elif state == "error":
        log.error("gateway %s on %s failed: %s", name, bridge, error, extra=extra)
    else:
        log.info("gateway %s on %s: %s%s", name, bridge, state,
                 " (%s)" % reason if reason else "", extra=extra)


class _Networks(object):
    """A round's {bridge: network uuid} for its log lines, made on the first ``get``:
    before the gateways are complete only a failure needs it (~0.1 ms at 50 gateways,
    on every new bridge's path otherwise)."""

    def __init__(self, reconciler, plan):
        self._made = None
        self._make = functools.partial(reconciler._networks, plan)

    def get(self, bridge):
        if self._made is None:
            self._made = self._make()
        return self._made.get(bridge)


_STARTED, _ASKED = "started", "asked"   # Engine._direct_start's answers


class KernelThread(ThreadPoolExecutor):
    """The kernel thread: one worker for rounds and questions about the kernel, each task
    run holding ``owner``, the lock of the kernel's one owner at a time. The netlink
    monitor's thread takes ``owner`` too, to run at once the round an event starts
    (``Engine.request_here``); a task submitted meanwhile waits for it. ``shutdown(True)``
    returns once no thread owns the kernel (a round in flight finishes its commits)."""

    def __init__(self):
        super(KernelThread, self).__init__(max_workers=1, thread_name_prefix="kernel")
        self.owner = threading.Lock()

    def submit(self, fn, *args, **kwargs):
        return super(KernelThread, self).submit(self._owned, fn, args, kwargs)

    def _owned(self, fn, args, kwargs):
        with self.owner:
            return fn(*args, **kwargs)

    def shutdown(self, wait=True, **kwargs):
        super(KernelThread, self).shutdown(wait, **kwargs)
        if wait:
            with self.owner:
                pass


class Engine(object):
    """Asyncio side of the reconciler: coalesced requests, one round at a time, failed
    rounds retried after 1, 2, 4 ... MAX_BACKOFF seconds (events still start rounds at
    once in between).

    An event from another thread that finds the kernel idle starts its round at once,
    without a detour through the event loop (two thread hops: monitor -> loop -> kernel
    thread, ~0.3-0.5 ms of a new bridge's latency); the loop hears of the round when it
    is over, as of any other. ``request_here`` (the netlink monitor's) runs that round in
    the calling thread itself, holding the KernelThread's ``owner``: waking the kernel
    thread on the other CPU was ~0.2-0.3 ms more of the same latency, and it competed
    for a CPU with whoever was still setting the new bridge up. ``request_threadsafe``
    (the OVSDB connection's) hands it to the kernel thread. Events during such a round
    make the kernel thread run one more round after it (the bridge's own events: set up,
    the address and route the round added), without waking the loop meanwhile; during a
    round the loop started, requests pile up and the loop runs the next round once that
    one ends, as before. Re-reads of the kernel's links (``resync``) always go through
    the loop."""

    def __init__(self, reconciler, executor, loop, resync, on_round=None,
                 idle_release=IDLE_RELEASE):
        self.reconciler = reconciler
        self.idle_release = idle_release
        self._release = None          # TimerHandle of the release after the last round
        self.executor = executor
        self.loop = loop
        self.resync = resync          # callable (kernel thread): re-dump the netlink view
        self.on_round = on_round      # callable(RoundResult), in the loop
        self._pending = set()
        self._resync = False
        self._wake = asyncio.Event()
        self._retry = None            # TimerHandle of the next retry of a failed round
        self.backoff = 0.0
        self.round_started = None     # monotonic time of the round in flight, or None
        self.first_round = loop.create_future()
        # rounds submitted to the kernel thread and not finished (any thread reads and
        # changes it under _lock); direct rounds only once the first round is done
        self._lock = threading.Lock()
        self._in_flight = 0
        self._direct = False
        self._direct_running = False  # a direct round is queued or running
        self._again = False           # an event came during it: one more round after it
        self._crash = None            # an exception out of a direct round: run() raises it

    def request(self, names=(), resync=False):
        self._pending.update(names)
        self._resync = self._resync or resync
        self._wake.set()

    def request_threadsafe(self, names=(), resync=False):
        """A round for ``names`` from another thread: at once in the kernel thread when
        it is idle, else through the loop (``resync``: always through the loop)."""
        how = None if resync else self._direct_start()
        if how == _STARTED:
            self._direct_submit()
        elif how is None:
            self.loop.call_soon_threadsafe(self.request, names, resync)

    def _direct_submit(self):
        """Direct rounds in the kernel thread (a direct round counted in flight)."""
        try:
            future = self.executor.submit(self._direct_rounds)
        except RuntimeError:   # shutting down: no new rounds
            with self._lock:
                self._in_flight -= 1
                self._direct_running = False
            return
        future.add_done_callback(self._direct_done)

    def request_here(self, names=()):
        """``request_threadsafe`` for the netlink monitor: when the kernel is idle the
        event's round runs in the calling thread, which owns the kernel meanwhile; the
        rounds asked for during it (``_again``) go to the kernel thread, so that the
        monitor reads on (a burst's events are folded alongside those rounds, not in one
        serial backlog). An executor without an ``owner`` (a plain one, in tests) gets
        the kernel thread's round."""
        owner = getattr(self.executor, "owner", None)
        if owner is None:
            return self.request_threadsafe(names)
        how = self._direct_start()
        if how is None:
            self.loop.call_soon_threadsafe(self.request, names, False)
        elif how == _STARTED:
            try:
                with owner:
                    more = self._direct_rounds(limit=1)
            except BaseException as exc:  # noqa: B902 - run() raises it in the loop
                with self._lock:
                    self._in_flight, self._direct_running = 0, False
                self._report(self._crashed, exc)
                return
            if more:
                self._direct_submit()

    def _direct_start(self):
        """_STARTED: a direct round may start now (the kernel idle, the first round done)
        and is counted in flight; _ASKED: a direct round is running, and its thread will
        run one more after it, without waking the loop (which would compete for the
        interpreter with it); None: the loop's business."""
        with self._lock:
            if self._direct and self._in_flight == 0:
                self._in_flight += 1
                self._direct_running = True
                return _STARTED
            if self._direct_running:
                self._again = True
                return _ASKED
            return None

    def stop_direct(self):
        """No more direct rounds (the daemon is stopping): events go to the loop, which
        has stopped running rounds; a direct round in flight ends with its own."""
        with self._lock:
            self._direct = False

    def call(self, func, *args):
        """Run ``func`` in the kernel thread, between rounds (a future): the one owner of
        the kernel answers other threads' questions about it too."""
        return self.loop.run_in_executor(self.executor, func, *args)

    def _round(self, resync):
        """One round in the kernel thread (after re-reading the links when ``resync``)."""
        self.round_started = time.monotonic()
        try:
            if resync:
                try:
                    self.resync()
                except Exception as exc:  # noqa: B902 - keep serving
                    # The events keep the mirror current meanwhile; the next resync
                    # (timer or overflow) tries again.
                    log.error("re-reading the kernel's links failed: %s", exc)
            return self.reconciler.run_round()
        finally:
            self.round_started = None
            with self._lock:
                self._in_flight -= 1

    def _direct_rounds(self, limit=None):
        """Direct rounds (in the kernel's owner: the kernel thread, or the monitor's
        thread for ``request_here``): one, and another while events came during it, up
        to ``limit``; each reported to the loop. True when ``limit`` stopped them with
        another round asked for: the caller hands that on, still counted in flight."""
        done = 0
        while True:
            with self._lock:
                self._again = False
                self._in_flight += 1   # _round's own, given back when it ends
            result = self._round(False)
            self._report(functools.partial(self._finished, names=()), result)
            done += 1
            with self._lock:
                if not (self._again and self._direct):
                    self._in_flight -= 1
                    self._direct_running = False
                    return False
                if limit is not None and done >= limit:
                    return True

    def _direct_done(self, future):
        """Direct rounds crashed (a bug): run() raises it in the loop."""
        try:
            future.result()
        except BaseException as exc:  # noqa: B902 - run() raises it in the loop
            with self._lock:
                self._in_flight, self._direct_running = 0, False
            self._report(self._crashed, exc)

    def _report(self, func, arg):
        try:
            self.loop.call_soon_threadsafe(func, arg)
        except RuntimeError:
            pass   # the loop is closed: the daemon is stopping

    def _crashed(self, exc):
        self._crash = exc
        self._wake.set()

    async def run(self):
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._crash is not None:
                    raise self._crash
                names, self._pending = self._pending, set()
                resync, self._resync = self._resync, False
                with self._lock:
                    self._in_flight += 1
                self.round_started = time.monotonic()   # waiting for the thread counts
                result = await self.loop.run_in_executor(self.executor, self._round, resync)
                self._finished(result, names)
        finally:
            if self._release is not None:
                self._release.cancel()
            self.stop_direct()   # stopped (or dead): no more rounds from events

    def _finished(self, result, names=()):
        """After each round (in the loop): retries, the first round's future, on_round."""
        if result.failure is not None:
            log.debug("round failed (bridges: %s)", ", ".join(sorted(names)) or "-")
        self._schedule_retry(result.failure is not None)
        self._schedule_release()
        if not self.first_round.done():
            self.first_round.set_result(result)
            with self._lock:
                self._direct = True
        if self.on_round is not None:
            try:
                self.on_round(result)
            except Exception:  # noqa: B902 - reporting must not stop the enforcing
                log.exception("reporting a round failed")

    def _schedule_release(self):
        """(In the loop, after each round) the reconciler's ``release`` once no round has
        come for ``idle_release`` seconds: a later round puts the timer off again."""
        if self._release is not None:
            self._release.cancel()
        self._release = self.loop.call_later(self.idle_release, self._release_when_idle)

    def _release_when_idle(self):
        self._release = None
        with self._lock:
            if self._in_flight:
                return   # a round runs or waits: its end schedules the release again
        release = getattr(self.reconciler, "release", None)
        if release is None:
            return
        try:
            future = self.loop.run_in_executor(self.executor, release)
        except RuntimeError:
            return   # the kernel thread is shutting down: the process frees it all
        future.add_done_callback(self._released)

    def _released(self, future):
        if future.cancelled():
            return
        if future.exception() is not None:
            log.error("freeing the iptables copies failed: %s", future.exception())
        elif future.result() is True:
            log.info("iptables changed around the last commit; checking again")
            self.request()

    def _schedule_retry(self, failed):
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if not failed:
            self.backoff = 0.0
            return
        self.backoff = min(self.backoff * 2, MAX_BACKOFF) if self.backoff else 1.0
        self._retry = self.loop.call_later(self.backoff, self.request)

    def healthy(self, max_round_seconds):
        """False when a round has shown no sign of life for ``max_round_seconds``: the
        reconciler is stuck (a round waiting on the xtables lock is not)."""
        started = self.round_started
        if started is None:
            return True
        alive = max(started, self.reconciler.heartbeat() or 0.0)
        return time.monotonic() - alive < max_round_seconds
