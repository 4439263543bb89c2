"""Carry out a topology's plan through the service layer, step by step; or remove what a
topology made.

``apply`` plans first (agent.topology.plan): a plan with a conflict is refused before
anything changes. Then each action runs in the plan's order (networks before VMs), and
``progress`` gets one sentence per step. Each step is one service operation (Networks /
Vms), which undoes its own partial work when XAPI refuses a step of it. When a step fails,
apply stops there: the error (of the failed operation's class, so the API answers with
its status) says which step failed, what was done before it and what was not done; what
was done stays. Applying again once the cause is fixed picks up from what exists.

``destroy`` removes the VMs (with their disks, powered off first) and then the networks
that carry the topology's mark, and nothing else.
"""
import logging

import XenAPI

from agent.core import desired
from agent.core import model as core
from agent.errors import AgentError, GatewayInvalid
from agent.service.errors import Conflict, XapiCallFailed
from agent.service.networks import Networks
from agent.service.vms import Vms
from agent.topology import plan as planner

log = logging.getLogger(__name__)


def apply(xenapi, topology, progress=None, prune=False, sr_check="warn"):
    """Make the host match ``topology`` (a model.Topology). ``prune``: also delete the
    objects marked with its name that the file no longer has. ``sr_check``: as
    Vms.create's. Returns {"topology", "steps": [action dict + "status"], "changed",
    "warnings", "summary"}; raises the failed step's error (see the module's text)."""
    actions = planner.plan(xenapi, topology, prune=prune)
    _refuse_conflicts(topology.name, actions, "applied")
    return _run(xenapi, topology.name, actions, progress, sr_check, "applied")


def destroy(xenapi, topology, progress=None):
    """Remove what ``topology`` (a model.Topology, or its name) made: the VMs, then the
    networks marked with its name. Objects named as in the file without that mark are
    left alone (reported as noop). Refused before any change if a marked network is used
    by a VM the topology does not manage."""
    name = getattr(topology, "name", topology)
    actions = planner.plan_destroy(xenapi, topology)
    _refuse_conflicts(name, actions, "destroyed")
    return _run(xenapi, name, actions, progress, "warn", "destroyed")


def _refuse_conflicts(name, actions, verb):
    conflicts = [a for a in actions if a.kind == planner.CONFLICT]
    if conflicts:
        raise Conflict("topology %s cannot be %s: %s; nothing was changed"
                       % (name, verb, "; ".join(a.detail for a in conflicts)),
                       topology=name, conflicts=[a.to_dict() for a in conflicts])


def _run(x, name, actions, progress, sr_check, verb):
    progress = progress or (lambda sentence: None)
    total = len(actions)
    steps, warnings, done = [], [], []
    for n, action in enumerate(actions, 1):
        progress("[%d/%d] %s" % (n, total, action.detail))
        if not action.changes():
            steps.append(dict(action.to_dict(), status="unchanged"
                              if action.kind == planner.NOOP else "reported"))
            continue
        try:
            warnings.extend(_execute(x, name, action, sr_check))
        except (AgentError, XenAPI.Failure) as exc:
            raise _failed(name, n, actions, done, exc, progress)
        done.append(action)
        steps.append(dict(action.to_dict(), status="done"))
        log.info("topology %s: %s", name, action.detail)
    for warning in warnings:
        progress("warning: %s" % warning)
    result = {"topology": name, "steps": steps, "changed": len(done),
              "warnings": warnings, "summary": planner.summary(actions)}
    progress("topology %s %s: %s" % (name, verb, "%d change%s" % (
        len(done), "" if len(done) == 1 else "s") if done else "nothing to change"))
    return result


def _execute(x, name, action, sr_check):
    """Carry out one action; returns warnings (sentences)."""
    marks = {desired.TOPOLOGY_MARK: name}
    spec = action.spec
    if action.object == "network":
        networks = Networks(x)
        gateway = None if spec is None or spec.gateway is None else spec.gateway.to_service()
        link = None if spec is None or spec.link is None else spec.link.to_service()
        if action.kind == planner.CREATE:
            networks.create(spec.name, gateway=gateway, description=spec.description,
                            vlan=None if spec.vlan is None else spec.vlan.to_service(),
                            marks=marks, link=link, **spec.to_service())
        elif action.kind == planner.UPDATE:
            _ref, rec = networks.find(action.uuid)
            if planner.current_gateway(_ref, rec) != spec.gateway:
                networks.set_gateway(action.uuid, gateway)
            if _link_differs(networks, rec, link):
                networks.set_link(action.uuid, link)
        elif action.kind == planner.DELETE:
            networks.delete(action.uuid)
        return []
    vms = Vms(x)
    if action.kind == planner.CREATE:
        view = vms.create(spec.name, memory_mib=spec.memory_mib, vcpus=spec.vcpus,
                          nics=list(spec.nics), disks=[d.to_service() for d in spec.disks],
                          iso=spec.iso, boot=spec.boot, himn=spec.himn, start=spec.start,
                          template=spec.template, sr_check=sr_check, marks=marks,
                          host=spec.host or None)
        return ["vm %s: %s" % (spec.name, w) for w in view.get("warnings", [])]
    if action.kind == planner.START:
        vms.start(action.uuid, host=spec.host or None)
    elif action.kind == planner.DELETE:
        vms.destroy(action.uuid, force=True)
    return []


def _link_differs(networks, rec, link):
    """Whether the network record ``rec`` has another link than ``link`` ({parent: name
    or uuid, tag}, or None)."""
    current = rec["other_config"].get(desired.LINK)
    if link is None or current is None:
        return (link is None) != (current is None)
    try:
        parent, tag = core.parse_link(current, desired.LINK)
    except GatewayInvalid:
        return True
    return (parent, tag) != (networks.find(link["parent"])[1]["uuid"], link["tag"])


def _failed(name, n, actions, done, exc, progress):
    """The error to raise for a failed step: of the failed operation's class (a
    XenAPI.Failure from outside a service step becomes XapiCallFailed), with what was
    done and what was not in its details and message."""
    if isinstance(exc, XenAPI.Failure):
        details = [str(d) for d in exc.details]
        exc = XapiCallFailed("XAPI refused: %s" % " ".join(details),
                             xapi_code=details[0] if details else None,
                             xapi_params=details[1:])
    action = actions[n - 1]
    not_done = [a for a in actions[n:] if a.changes()]
    progress("[%d/%d] failed: %s" % (n, len(actions), exc.message))
    message = ("topology %s: step %d of %d failed (%s): %s. Done before it: %s. Not done: "
               "%s. Apply again once the cause is fixed: what was done stays, and the "
               "plan starts from what exists."
               % (name, n, len(actions), action.detail, exc.message,
                  "; ".join(a.detail for a in done) or "nothing",
                  "; ".join(a.detail for a in not_done) or "nothing"))
    details = dict(exc.details, topology=name, failed_action=action.to_dict(),
                   done=[a.to_dict() for a in done], not_done=[a.to_dict() for a in not_done])
    log.error("%s", message)
    return type(exc)(message, **details)
