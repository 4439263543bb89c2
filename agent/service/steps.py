"""XAPI steps, and creations that are all or nothing even when XAPI goes away half way.

``step(what, call, *args)`` makes one XAPI call and turns a XenAPI failure into
XapiCallFailed naming the step and XAPI's code. ``field(parse, value, name)`` turns a core
parse error into InvalidInput naming the request field.

A creation runs as an ``Operation``:

- every object it makes is marked while it is being made: networks and disks carry
  ``other_config[MARK] = operation id`` from the call that creates them; a VM is cloned
  under the name ``NAME_PREFIX + operation id`` and gets its real name as the last step
  (``commit``), the one call that makes the creation count;
- when a step fails, the undo callables run, newest first. When XAPI cannot be reached
  (connection lost, call timed out), the undo cannot finish now and the outcome of the
  failed call is unknown: the operation leaves a sweep pending;
- ``sweep(x)`` removes what marked objects no running operation of this process owns: the
  VMs being created (powered off, destroyed with their VBDs and VIFs), the networks (with
  their VLANs), and the disks no surviving VM uses (a disk of a committed VM only loses
  its mark). The API runs it before the next request once XAPI answers again, and once
  per process (a daemon that died half way through a creation).

``pool(x)`` serialises what must be checked and written as one: a lock per XAPI pool and
the names being created right now (a VM's real name appears only when it commits).
"""
import contextlib
import http.client
import logging
import re
import socket
import threading
import uuid
import xmlrpc.client

import XenAPI

from agent.errors import GatewayInvalid
from agent.service.errors import Busy, Conflict, InvalidInput, XapiCallFailed, XapiTimeout
from agent.service.errors import XapiUnavailable

log = logging.getLogger(__name__)

MARK = "xgw-in-flight"           # other_config: the operation creating this object
NAME_PREFIX = "xgw-creating-"    # a VM's name_label until its creation commits
_TEMP_NAME = re.compile("^%s([0-9a-f]{32})$" % NAME_PREFIX)
NULL = "OpaqueRef:NULL"
LOCK_WAIT = 60.0                 # seconds a change waits for another one on the same pool
# Errors that leave the outcome of a call unknown (no XenAPI answer came back)
LOST = (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError, XapiUnavailable)

_state = threading.Lock()
_live = set()          # ids of the operations running in this process
_sweep = {"pending": True, "reason": "no sweep yet in this process"}
_pools = {}            # pool uuid -> Pool


# ---- one call -------------------------------------------------------------------------------
def step(what, call, *args):
    """``call(*args)``; XapiCallFailed when XAPI refuses it, XapiTimeout when XAPI does
    not answer in time, XapiUnavailable when the connection is lost: each names the step."""
    try:
        return call(*args)
    except XenAPI.Failure as exc:
        details = [str(d) for d in exc.details]
        raise XapiCallFailed("%s failed: %s" % (what, " ".join(details)), step=what,
                             xapi_code=details[0] if details else None,
                             xapi_params=details[1:])
    except socket.timeout:
        raise XapiTimeout("%s: XAPI did not answer in time; what this request created is "
                          "rolled back once XAPI answers again" % what, step=what)
    except LOST as exc:
        raise XapiUnavailable("%s: the connection to XAPI was lost (%s: %s); what this "
                              "request created is rolled back once XAPI answers again"
                              % (what, type(exc).__name__, exc), step=what)


def field(parse, value, name):
    try:
        return parse(value, name)
    except GatewayInvalid as exc:
        raise InvalidInput(str(exc), field=name)


# ---- creations ------------------------------------------------------------------------------
def in_flight(rec):
    """Is this record (a network, VM or VDI) part of a creation not committed yet?"""
    return _owner(rec) is not None


def _owner(rec):
    """The id of the operation creating this record, or None."""
    match = _TEMP_NAME.match(rec.get("name_label", ""))
    if match:
        return match.group(1)
    return rec.get("other_config", {}).get(MARK)


class Operation(object):
    """``with Operation(x, "create VM Fuel") as op:`` ... ``op.commit(...)``; an exception
    before the commit undoes what ``op.undo`` registered (see the module's text)."""

    def __init__(self, xenapi, what):
        self.x = xenapi
        self.what = what
        self.id = uuid.uuid4().hex
        self.mark = {MARK: self.id}
        self.temp_name = NAME_PREFIX + self.id
        self.committed = False
        self._undo = []

    def __enter__(self):
        with _state:
            _live.add(self.id)
        return self

    def __exit__(self, kind, exc, tb):
        try:
            if exc is not None and not self.committed:
                if isinstance(exc, LOST):
                    _pend("%s lost XAPI (%s)" % (self.what, type(exc).__name__))
                if isinstance(exc, (XapiTimeout, socket.timeout)):
                    # XAPI hangs: each undo would wait for its timeout too; the sweep
                    # undoes it all once XAPI answers again
                    log.warning("%s: XAPI does not answer; the rollback waits for it",
                                self.what)
                else:
                    self._rollback()
        finally:
            with _state:
                _live.discard(self.id)
        return False

    def undo(self, what, call, *args):
        """Register ``call(*args)`` to run if the operation fails before its commit."""
        self._undo.append((what, call, args))

    def commit(self, what, call, *args):
        """The step that makes the creation count; nothing is undone after it."""
        result = step(what, call, *args)
        self.committed = True
        return result

    def tidy(self, what, call, *args):
        """A step after the commit that only removes a mark: when it fails, the sweep
        finishes it, and the creation still succeeds."""
        try:
            call(*args)
        except (XenAPI.Failure,) + LOST as exc:
            log.warning("%s: %s failed (%s); a later sweep removes the mark", self.what, what,
                        type(exc).__name__)
            _pend("%s: %s failed" % (self.what, what))

    def _rollback(self):
        for what, call, args in reversed(self._undo):
            try:
                call(*args)
            except (XenAPI.Failure, XapiCallFailed) as exc:
                log.error("rollback of %s: %s failed: %s", self.what, what, exc)
            except LOST as exc:
                log.warning("rollback of %s: XAPI lost at %s (%s); what is left is marked "
                            "and swept once XAPI answers", self.what, what,
                            type(exc).__name__)
                _pend("rollback of %s unfinished" % self.what)
                return


def _pend(reason):
    with _state:
        _sweep.update(pending=True, reason=reason)


def sweep_pending():
    """None, or why a sweep is due."""
    with _state:
        return _sweep["reason"] if _sweep["pending"] else None


def sweep(xenapi):
    """Remove what creations that are not running any more left behind (see the module's
    text). Returns the number of objects removed or unmarked; XAPI transport errors
    propagate (the sweep stays pending)."""
    with _state:
        _sweep["pending"] = False
    try:
        with pool(xenapi).locked():
            done = _sweep_once(xenapi)
    except BaseException:
        _pend("the last sweep did not finish")
        raise
    if done:
        log.warning("swept %d object(s) left by creations that did not finish", done)
    return done


def _sweep_once(x):
    with _state:
        live = set(_live)
    vms = {r: rec for r, rec in x.VM.get_all_records().items()
           if in_flight(rec) and _owner(rec) not in live}
    vdis = {r: rec for r, rec in x.VDI.get_all_records().items()
            if MARK in rec["other_config"] and rec["other_config"][MARK] not in live}
    networks = {r: rec for r, rec in x.network.get_all_records().items()
                if MARK in rec["other_config"] and rec["other_config"][MARK] not in live}
    done = 0
    for ref, rec in vms.items():
        done += _try("VM %s" % rec["name_label"], discard_vm, x, ref, rec["power_state"])
    vbds = x.VBD.get_all_records() if vdis else {}
    for ref, rec in vdis.items():
        users = [vbds[b]["VM"] for b in rec["VBDs"] if b in vbds]
        if any(vm not in vms for vm in users):
            done += _try("the mark of disk %s" % rec["uuid"], x.VDI.remove_from_other_config,
                         ref, MARK)
        else:
            done += _try("disk %s" % rec["uuid"], x.VDI.destroy, ref)
    for ref, rec in networks.items():
        done += _try("network %s" % rec["name_label"], discard_network, x, ref)
    return done


def _try(what, call, *args):
    try:
        call(*args)
        return 1
    except (XenAPI.Failure, XapiCallFailed) as exc:
        log.error("sweep: removing %s failed: %s", what, exc)
        return 0


def discard_vm(x, ref, power_state="Halted"):
    """Power a VM off (unless halted) and destroy it; its VBDs and VIFs go with it."""
    if power_state != "Halted":
        x.VM.hard_shutdown(ref)
    x.VM.destroy(ref)


def discard_network(x, ref):
    """Destroy a network's VLANs and tunnels, then the network."""
    for pif in x.network.get_PIFs(ref):
        rec = x.PIF.get_record(pif)
        vlan = rec["VLAN_master_of"]
        if vlan and vlan != NULL:
            step("destroy its VLAN", x.VLAN.destroy, vlan)
        for tunnel in rec["tunnel_access_PIF_of"]:
            step("destroy its tunnel", x.tunnel.destroy, tunnel)
    step("destroy the network", x.network.destroy, ref)


# ---- one writer at a time per pool -----------------------------------------------------------
class Pool(object):
    def __init__(self):
        self.lock = threading.Lock()
        self.claims = set()   # (kind, name) being created now

    @contextlib.contextmanager
    def locked(self):
        """Hold the pool's lock: check and write as one (Busy after LOCK_WAIT seconds)."""
        if not self.lock.acquire(timeout=LOCK_WAIT):
            raise Busy("another change to this pool is under way for more than %d s; retry "
                       "later" % LOCK_WAIT)
        try:
            yield
        finally:
            self.lock.release()

    @contextlib.contextmanager
    def claim(self, kind, name, check):
        """Reserve ``name`` for a creation of ``kind`` while it runs: ``check()`` (which
        raises Conflict when XAPI has that name already) and the reservation happen under
        the lock; a second claim of the name meanwhile is a Conflict."""
        with self.locked():
            if (kind, name) in self.claims:
                raise Conflict("a %s named %s is being %s right now" % (
                    kind, name, "applied or destroyed" if kind == "topology" else "created"),
                    field="name", name=name)
            check()
            self.claims.add((kind, name))
        try:
            yield
        finally:
            with self.lock:
                self.claims.discard((kind, name))


def pool(xenapi):
    """The Pool of the XAPI ``xenapi`` talks to (by the pool's uuid)."""
    records = xenapi.pool.get_all_records()
    key = min(rec["uuid"] for rec in records.values()) if records else ""
    with _state:
        return _pools.setdefault(key, Pool())
