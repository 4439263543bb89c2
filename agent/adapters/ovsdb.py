"""Open vSwitch as the daemon sees it: which network backend the host runs, whether OVSDB
answers, and the daemon's one connection to it.

Dom0 picks its backend in /etc/xensource/network.conf: ``openvswitch`` (or ``vswitch``)
is Open vSwitch, ``bridge`` is Linux bridges; a missing file or any other value is Open
vSwitch, XAPI's default (xcp-networkd reads it the same way).

OVSDB is spoken through the Open vSwitch project's own Python library (``ovs`` on PyPI):
``request`` is one JSON-RPC call (doctor's ``list_dbs``), ``Ovsdb`` is the daemon's one IDL
connection: an in-memory replica of the few tables and columns it needs (``COLUMNS``),
kept by OVSDB monitor, reconnected with backoff by ``ovs.jsonrpc.Session`` and resynced
after each reconnect. The IDL is not thread-safe, so one thread of its own owns it; the
reconciler asks it for work with ``Ovsdb.call`` / ``Ovsdb.sync_ports`` and waits.

Rows: the daemon writes only Port and Interface rows it created itself, each marked in
external_ids (agent.core.ports), plus one mutation of a Bridge's ``ports`` set to insert or
delete such a port's uuid (a mutate, never a rewrite of the set). Any row without its mark
is left alone, whatever its name.
"""
import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, TimeoutError as FutureTimeout

from agent.core import ports as portsmod
from agent.errors import OvsdbUnavailable

log = logging.getLogger(__name__)

DATABASE = "Open_vSwitch"
# What the daemon reads and writes, and nothing more (register_columns).
COLUMNS = OrderedDict([
    ("Open_vSwitch", ["ovs_version"]),                         # doctor's report
    ("Bridge", ["name", "ports", "external_ids"]),
    ("Port", ["name", "interfaces", "tag", "external_ids"]),
    ("Interface", ["name", "type", "options", "external_ids"]),
])

OPENVSWITCH, BRIDGE = "openvswitch", "bridge"


def backend_of(text):
    """The backend named by network.conf's text (None: no file)."""
    value = (text or "").strip().lower()
    return BRIDGE if value == BRIDGE else OPENVSWITCH


def network_backend(path):
    """(backend, what network.conf at ``path`` says: its first word, or None when it cannot be read)."""
    try:
        with open(path) as f:
            text = f.read()
    except (IOError, OSError):
        return backend_of(None), None
    words = text.split()
    return backend_of(text), (words[0] if words else "")


def request(remote, method, params, timeout=2.0):
    """The result of one JSON-RPC call to OVSDB at ``remote``; OvsdbUnavailable when it does
    not answer within ``timeout`` seconds or answers with an error."""
    import ovs.jsonrpc
    import ovs.poller
    if remote.startswith("unix:") and not os.path.exists(remote[len("unix:"):]):
        # nothing to wait for: no OVSDB has ever listened there (or it is gone)
        raise OvsdbUnavailable("OVSDB at %s does not answer (cannot connect: %s)"
                               % (remote, _socket_problem(remote)), remote=remote)
    session = ovs.jsonrpc.Session.open(remote)
    deadline = time.monotonic() + timeout
    message, seqno = None, None
    try:
        while True:
            session.run()
            if session.is_connected() and session.get_seqno() != seqno:
                # (re)connected: (re)send; a reply on the old connection is lost
                seqno = session.get_seqno()
                message = ovs.jsonrpc.Message.create_request(method, params)
                session.send(message)
            reply = session.recv() if message is not None else None
            if reply is not None and reply.id == message.id:
                if reply.type == ovs.jsonrpc.Message.T_REPLY:
                    return reply.result
                raise OvsdbUnavailable("OVSDB at %s answered %s with an error: %s"
                                       % (remote, method, reply.error), remote=remote)
            left = deadline - time.monotonic()
            if left <= 0:
                raise OvsdbUnavailable("OVSDB at %s does not answer%s" % (
                    remote, "" if session.is_connected() else
                    " (cannot connect: %s)" % _socket_problem(remote)), remote=remote)
            poller = ovs.poller.Poller()
            session.wait(poller)
            session.recv_wait(poller)
            poller.timer_wait(max(1, int(left * 1000)))
            poller.block()
    finally:
        session.close()


def _socket_problem(remote):
    if remote.startswith("unix:") and not os.path.exists(remote[len("unix:"):]):
        return "no socket %s" % remote[len("unix:"):]
    return "refused or unreachable"


def list_dbs(remote, timeout=2.0):
    """The database names OVSDB at ``remote`` (``unix:/PATH``) serves; OvsdbUnavailable
    when it does not answer within ``timeout`` seconds or answers something else."""
    result = request(remote, "list_dbs", [], timeout)
    if not isinstance(result, list):
        raise OvsdbUnavailable("OVSDB at %s answered list_dbs with %r" % (remote, result),
                               remote=remote)
    return result


class Ovsdb(object):
    """The daemon's one OVSDB connection: an IDL replica of ``COLUMNS`` owned by a thread.

    ``start()`` starts the thread, which connects (and keeps reconnecting, with backoff)
    on its own: an OVSDB that is down or not there yet never stops the daemon, it only
    makes ``call`` raise OvsdbUnavailable until it answers. ``on_change()`` is called
    from that thread when something the daemon cares about changed: a bridge came or
    went, one of its own ports or interfaces changed or vanished, or the connection came
    up (the replica resynced) or dropped. ``connected``/``reason`` say how it is now.
    """

    SCHEMA_TIMEOUT = 5.0
    CALL_TIMEOUT = 10.0
    MAX_RETRY = 8.0   # seconds between attempts to fetch the schema, at most

    def __init__(self, remote, on_change=None):
        self.remote = remote
        self.on_change = on_change
        self.connected = False
        self.reason = "not connected yet"
        self.since = None          # wall-clock time of the last change of ``connected``
        self.version = None        # Open vSwitch's version, once connected
        self._idl = None
        self._jobs = []
        self._jobs_lock = threading.Lock()
        self._stopping = False
        self._thread = None
        self._wake_r, self._wake_w = os.pipe()
        self._changed = False
        self._watched = {}    # kind -> frozenset of the bridges its wanted ports go on
        self._settled = threading.Event()   # set once connected, or a connection failed

    # ---- lifecycle ------------------------------------------------------------------
    def start(self):
        self._thread = threading.Thread(target=self._run, name="ovsdb", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout=5.0):
        self._stopping = True
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._idl is not None and (self._thread is None or not self._thread.is_alive()):
            self._idl.close()
            self._idl = None
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1

    def watched(self):
        """The bridges whose coming or going matters: those of the last specs, any kind."""
        return frozenset().union(*self._watched.values()) if self._watched else frozenset()

    def alive(self):
        return self._thread is not None and self._thread.is_alive()

    def wait_connected(self, timeout):
        """Whether the connection is up within ``timeout`` seconds; False as soon as an
        attempt failed (``reason`` says why)."""
        self._settled.wait(timeout)
        return self.connected

    def state(self):
        """What status.json and doctor show of this connection."""
        return {"remote": self.remote, "connected": self.connected, "reason": self.reason,
                "since": self.since, "version": self.version}

    # ---- work for the IDL thread ----------------------------------------------------
    def call(self, func, *args, **kw):
        """``func(idl, *args)`` run in the IDL thread, between two runs of the IDL; its
        result. OvsdbUnavailable while not connected (no replica to read or write), or
        when the thread does not answer within ``timeout`` seconds."""
        timeout = kw.pop("timeout", self.CALL_TIMEOUT)
        if not self.alive():
            raise OvsdbUnavailable("the OVSDB connection is not running", remote=self.remote)
        if not self.connected:   # no replica to read or write: say why, without waiting
            raise OvsdbUnavailable(self.reason, remote=self.remote)
        future = Future()
        with self._jobs_lock:
            self._jobs.append((future, func, args))
        self._wake()
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise OvsdbUnavailable("OVSDB at %s did not complete the request within %.0f s"
                                   % (self.remote, timeout), remote=self.remote)

    def sync_ports(self, kind, specs, timeout=None):
        """Make the daemon's ports of ``kind`` (None: of every kind) in OVSDB exactly ``specs``
        (agent.core.ports.PortSpec): create the missing, repair the altered (tag,
        interface type/options, marks), remove those of ``kind`` not in ``specs`` and the
        groups whose bridges are not all there. Returns ({spec key: (state, reason)},
        [what was written, as sentences]); raises OvsdbUnavailable."""
        specs = list(specs)
        self._watched[kind] = frozenset(spec.bridge for spec in specs)
        return self.call(_sync_ports, kind, specs, timeout=timeout or self.CALL_TIMEOUT)

    def reconcile_links(self, links):
        """Make the patch-port pairs of ``links`` (agent.core.links.DesiredLink) and no
        other link ports: {child network uuid: (state, reason)}, state ``applied``,
        ``waiting`` (a bridge is not on this host: no port of the link is kept) or
        ``error``; and what was written. Raises OvsdbUnavailable."""
        specs = [spec for link in links for spec in portsmod.link_ports(link)]
        return self.sync_ports(portsmod.LINK, specs)

    def own_ports(self, kind=None):
        """{port name: (bridge name or None, external_ids)} of the daemon's ports."""
        return self.call(_own_ports, kind)

    # ---- the thread -----------------------------------------------------------------
    def _wake(self):
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _run(self):
        import ovs.poller
        retry = 1.0
        while not self._stopping:
            if self._idl is None:
                try:
                    self._idl = self._connect()
                    retry = 1.0
                except OvsdbUnavailable as exc:
                    self._set_state(False, str(exc))
                    self._settled.set()
                    self._fail_jobs()
                    self._sleep(retry)
                    retry = min(retry * 2, self.MAX_RETRY)
                    continue
                except Exception as exc:  # noqa: B902 - a library bug must not end the thread
                    log.exception("OVSDB connection setup failed")
                    self._set_state(False, "connection setup failed: %s" % exc)
                    self._fail_jobs()
                    self._sleep(self.MAX_RETRY)
                    continue
            idl = self._idl
            try:
                idl.run()
                self._set_state(_monitoring(idl), None if _monitoring(idl) else
                                "connection to OVSDB at %s lost; reconnecting" % self.remote)
                self._do_jobs(idl)
                if self._changed:
                    self._changed = False
                    self._notify()
                poller = ovs.poller.Poller()
                idl.wait(poller)
                poller.fd_wait(self._wake_r, ovs.poller.POLLIN)
                poller.block()
                self._drain()
            except Exception:  # noqa: B902 - keep the connection thread alive
                log.exception("the OVSDB connection thread hit an error; starting over")
                self._set_state(False, "internal error; reconnecting")
                try:
                    idl.close()
                except Exception:  # noqa: B902
                    pass
                self._idl = None
                self._sleep(1.0)

    def _connect(self):
        """A new IDL with the schema OVSDB serves, trimmed to COLUMNS."""
        import ovs.db.idl
        schema = request(self.remote, "get_schema", [DATABASE], self.SCHEMA_TIMEOUT)
        helper = ovs.db.idl.SchemaHelper(schema_json=schema)
        for table, columns in COLUMNS.items():
            helper.register_columns(table, columns)
        return _Idl(self, self.remote, helper)

    def _set_state(self, connected, reason):
        if connected == self.connected and (connected or reason == self.reason):
            return
        was = self.connected
        self.connected, self.reason = connected, reason
        if connected:
            self._settled.set()
        if connected != was:
            self.since = time.time()
            if connected:
                self.version = _ovs_version(self._idl)
                log.info("connected to OVSDB at %s (Open vSwitch %s)", self.remote,
                         self.version or "?")
            else:
                log.warning("OVSDB connection down: %s (retrying with backoff)", reason)
            self._notify()
        elif not connected:   # still down, for another reason (once per reason)
            log.warning("OVSDB connection down: %s (retrying with backoff)", reason)

    def _notify(self):
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:  # noqa: B902 - a callback must not end the thread
                log.exception("OVSDB change callback failed")

    def _take_jobs(self):
        with self._jobs_lock:
            jobs, self._jobs = self._jobs, []
        return [job for job in jobs if job[0].set_running_or_notify_cancel()]

    def _fail_jobs(self):
        for future, _func, _args in self._take_jobs():
            future.set_exception(OvsdbUnavailable(self.reason, remote=self.remote))

    def _do_jobs(self, idl):
        if not self.connected:
            self._fail_jobs()
            return
        for future, func, args in self._take_jobs():
            try:
                future.set_result(func(idl, *args))
            except Exception as exc:  # noqa: B902 - handed to the caller
                future.set_exception(exc)

    def _sleep(self, seconds):
        import select
        try:
            select.select([self._wake_r], [], [], seconds)
        except (OSError, ValueError):
            time.sleep(seconds)
        self._drain()

    def _drain(self):
        try:
            import fcntl
            flags = fcntl.fcntl(self._wake_r, fcntl.F_GETFL)
            fcntl.fcntl(self._wake_r, fcntl.F_SETFL, flags | os.O_NONBLOCK)
            while os.read(self._wake_r, 4096):
                pass
        except OSError:
            pass


def _make_idl_class():
    import ovs.db.idl

    class Idl(ovs.db.idl.Idl):
        """The IDL, telling its owner about the changes that matter to the daemon."""

        def __init__(self, owner, remote, helper):
            super(Idl, self).__init__(remote, helper)
            self.owner = owner

        def notify(self, event, row, updates=None):
            if _relevant(event, row, updates, self.owner.watched()):
                self.owner._changed = True
    return Idl


_IDL_CLASS = []


def _Idl(owner, remote, helper):
    if not _IDL_CLASS:
        _IDL_CLASS.append(_make_idl_class())
    return _IDL_CLASS[0](owner, remote, helper)


def _monitoring(idl):
    # The IDL says whether it ever had a replica, not whether it has one now: connected
    # and monitoring is the session's state and the IDL's own state machine.
    return idl._session.is_connected() and idl.state == idl.IDL_S_MONITORING


def _ovs_version(idl):
    if idl is None:
        return None
    for row in idl.tables["Open_vSwitch"].rows.values():
        version = _first(row.ovs_version)
        return version or None
    return None


def _relevant(event, row, updates, bridges):
    """Whether an IDL notification is one the daemon acts on: one of its own ports or
    interfaces changed, or a bridge named in ``bridges`` (those its wanted ports go on)
    came or went. Other bridges and ports (VIFs coming and going) start no round."""
    table = row._table.name
    if table == "Bridge":
        names = set([_get(row, "name")])
        if event == "update":
            if updates is None or not hasattr_safe(updates, "name"):
                return False
            names.add(_get(updates, "name"))
        return bool(names & bridges)
    if table in ("Port", "Interface"):
        for r in (row, updates):
            if r is not None and portsmod.is_own(_get(r, "external_ids", {})):
                return True
    return False


def hasattr_safe(row, column):
    try:
        getattr(row, column)
    except AttributeError:
        return False
    return True


def _get(row, column, default=None):
    try:
        return getattr(row, column)
    except AttributeError:
        return default


def _first(value):
    """An optional column's value (the IDL gives a list of 0 or 1) or a scalar."""
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


# ---- jobs, run in the IDL thread ---------------------------------------------------------
def _bridges_of_ports(idl):
    bridges, where = {}, {}
    for bridge in idl.tables["Bridge"].rows.values():
        bridges[bridge.name] = bridge
        for port in bridge.ports:
            where[port.uuid] = bridge
    return bridges, where


def _own_ports(idl, kind=None):
    _bridges, where = _bridges_of_ports(idl)
    return {port.name: (where[port.uuid].name if port.uuid in where else None,
                        dict(port.external_ids))
            for port in idl.tables["Port"].rows.values()
            if portsmod.is_own(port.external_ids, kind)}


def _sync_ports(idl, kind, specs, attempts=3):
    import ovs.db.idl
    for attempt in range(1, attempts + 1):
        results, writes, txn = _plan_ports(idl, kind, specs)
        if txn is None:
            return results, []
        status = txn.commit_block()
        if status in (ovs.db.idl.Transaction.SUCCESS, ovs.db.idl.Transaction.UNCHANGED):
            return results, writes
        if status == ovs.db.idl.Transaction.TRY_AGAIN and attempt < attempts:
            idl.run()   # the replica moved under the transaction: read it again
            continue
        reason = "OVSDB transaction %s: %s" % (
            ovs.db.idl.Transaction.status_to_string(status), txn.get_error() or "")
        if status == ovs.db.idl.Transaction.TRY_AGAIN and not _monitoring(idl):
            raise OvsdbUnavailable(reason)
        return ({key: (portsmod.ERROR, reason) if state == portsmod.APPLIED else (state, why)
                 for key, (state, why) in results.items()}, [])
    raise AssertionError("unreachable")


def _plan_ports(idl, kind, specs):
    """(results, writes, transaction or None) making the own ports of ``kind`` ``specs``."""
    import ovs.db.idl
    txn = ovs.db.idl.Transaction(idl)
    try:
        return _fill(idl, txn, kind, specs)
    except BaseException:
        txn.abort()   # the IDL allows one transaction at a time: never leave one open
        raise


def _fill(idl, txn, kind, specs):
    bridges, where = _bridges_of_ports(idl)
    ports = {p.name: p for p in idl.tables["Port"].rows.values()}
    interfaces = {i.name: i for i in idl.tables["Interface"].rows.values()}
    groups = OrderedDict()
    for spec in specs:
        groups.setdefault(spec.key, []).append(spec)
    results, wanted = OrderedDict(), {}
    for key, group in groups.items():
        missing = sorted(set(s.bridge for s in group if s.bridge not in bridges))
        if missing:
            results[key] = (portsmod.WAITING, (
                "bridge %s does not exist on this host" % missing[0] if len(missing) == 1
                else "bridges %s do not exist on this host" % " and ".join(missing)))
            continue
        taken = sorted(set(s.name for s in group if s.name in wanted))
        if taken:
            results[key] = (portsmod.ERROR, "port name %s is already that of %s %s here; "
                            "left out" % (", ".join(taken), kind, wanted[taken[0]].key))
            continue
        foreign = sorted(set(
            s.name for s in group
            if (s.name in ports and not portsmod.is_own(ports[s.name].external_ids, kind)) or
            (s.name in interfaces and not portsmod.is_own(interfaces[s.name].external_ids,
                                                          kind))))
        if foreign:
            results[key] = (portsmod.ERROR, "OVS already has a port or interface named %s "
                            "that xapi-gateway did not create; left alone" % ", ".join(foreign))
            continue
        results[key] = (portsmod.APPLIED, None)
        for spec in group:
            wanted[spec.name] = spec
    txn.add_comment("xapi-gateway: %s ports" % kind)
    writes = []
    kept = set()
    for _name, port in sorted(ports.items()):
        if not portsmod.is_own(port.external_ids, kind):
            continue
        spec = wanted.get(port.name)
        bridge = where.get(port.uuid)
        if spec is not None and bridge is not None and bridge.name == spec.bridge:
            kept.add(port.name)
            continue
        writes.append("removed %s port %s%s" % (port.external_ids.get(portsmod.KIND_KEY),
                                                 port.name, " from %s" % bridge.name
                                                 if bridge is not None else ""))
        if bridge is not None:
            bridge.delvalue("ports", port)
        port.delete()
    for name, spec in sorted(wanted.items()):
        ids = spec.external_ids()
        if name in kept:
            writes.extend(_repair(txn, idl, ports[name], spec, ids))
        else:
            iface = txn.insert(idl.tables["Interface"])
            iface.name = name
            _set_interface(iface, spec, ids)
            port = txn.insert(idl.tables["Port"])
            port.name = name
            port.interfaces = [iface]
            port.tag = [spec.tag] if spec.tag is not None else []
            port.external_ids = ids
            bridges[spec.bridge].addvalue("ports", port)
            writes.append("added %s port %s to %s%s" % (
                kind, name, spec.bridge, " (tag %d)" % spec.tag if spec.tag is not None else ""))
    if not writes:
        txn.abort()
        return results, writes, None
    return results, writes, txn


def _set_interface(iface, spec, ids):
    """The mutable columns of an own Interface (its name is immutable in OVSDB)."""
    iface.type = spec.type
    iface.options = dict(spec.options)
    iface.external_ids = ids


def _repair(txn, idl, port, spec, ids):
    writes = []
    if _first(port.tag) != spec.tag:
        port.tag = [spec.tag] if spec.tag is not None else []
        writes.append("set tag %s on %s" % (spec.tag, spec.name))
    if dict(port.external_ids) != ids:
        port.external_ids = ids
        writes.append("restored external_ids of port %s" % spec.name)
    ifaces = list(port.interfaces)
    if len(ifaces) != 1 or ifaces[0].name != spec.name:
        iface = txn.insert(idl.tables["Interface"])
        iface.name = spec.name
        _set_interface(iface, spec, ids)
        port.interfaces = [iface]
        writes.append("replaced the interfaces of port %s" % spec.name)
        return writes
    iface = ifaces[0]
    if iface.type != spec.type or dict(iface.options) != dict(spec.options) or \
            dict(iface.external_ids) != ids:
        _set_interface(iface, spec, ids)
        writes.append("repaired interface %s (type %s, options %s)" % (
            spec.name, spec.type, ",".join("%s=%s" % kv for kv in sorted(spec.options.items()))))
    return writes
