"""Preflight ("doctor"): is this host ready for xapi-gateway, and what would stop it?

Each check answers ok, warn or fail with a sentence a person can act on. XAPI checks use
a session's ``xenapi``; kernel checks read through the same adapters the daemon uses.
"""
import os
from collections import namedtuple

from agent.core import rules as rulesmod
from agent.errors import AgentError

Check = namedtuple("Check", "name status detail")
OK, WARN, FAIL = "ok", "warn", "fail"
STOPPERS = ("REJECT", "DROP")


def xapi_checks(x):
    checks = []
    host = x.host.get_all()[0]
    record = x.host.get_record(host)
    version = record.get("software_version", {}).get("product_version") or "%s.%s" % (
        record["API_version_major"], record["API_version_minor"])
    checks.append(Check("xapi", OK, "XAPI reachable: host %s, %s version %s (API %s.%s)" % (
        record["name_label"], record["API_version_vendor"] or "XAPI", version,
        record["API_version_major"], record["API_version_minor"])))

    himn = [r for r, n in x.network.get_all_records().items()
            if n["other_config"].get("is_host_internal_management_network") == "true"]
    checks.append(Check("himn", OK, "host internal management network present") if himn else
                  Check("himn", FAIL, "no host internal management network: VMs cannot be "
                                      "given the HIMN"))

    pool = x.pool.get_all()[0]
    sr = x.pool.get_default_SR(pool)
    if sr == "OpaqueRef:NULL" or not sr:
        checks.append(Check("default SR", FAIL, "the pool has no default SR: VM disks need "
                                                "one (xe pool-param-set default-SR=...)"))
    else:
        kind = x.SR.get_type(sr)
        name = x.SR.get_name_label(sr)
        if kind == "ext":
            checks.append(Check("default SR", OK, "default SR %s is ext (thin VHD files)" % name))
        else:
            checks.append(Check("default SR", WARN, "default SR %s is %s, not ext: disks are "
                                "thick-provisioned there (a 50 GiB disk takes 50 GiB)"
                                % (name, kind)))
    return checks


def kernel_checks(iptables, sysctl, iptables_binary="/usr/sbin/iptables"):
    checks = [_backend(iptables_binary)]
    forward = iptables.observe("filter").get("FORWARD", [])
    chain = rulesmod.CHAIN_OF["filter"]
    ours = [v.position for v in forward if v.target == chain]
    before = [v for v in forward if not ours or v.position < ours[0]]
    blocking = [v for v in before if v.target in STOPPERS or (
        v.target and v.target not in ("ACCEPT", "RETURN") and v.target != chain)]
    if ours and ours[0] == 0:
        checks.append(Check("forward path", OK, "FORWARD jumps to %s first, ahead of the "
                                                "Dom0 firewall" % chain))
    elif blocking:
        first = blocking[0]
        checks.append(Check("forward path", FAIL, "FORWARD reaches %s (rule %d) before %s: "
                            "forwarded VM traffic may be REJECTed; is xapi-gateway-agent "
                            "running?" % (first.target, first.position + 1,
                                          chain if ours else "any xapi-gateway rule")))
    else:
        checks.append(Check("forward path", WARN, "no jump to %s in FORWARD yet (nothing "
                                                  "blocks forwarding either)" % chain))
    on = sysctl.ip_forward()
    checks.append(Check("ip_forward", OK if on else WARN,
                        "IPv4 forwarding is on" if on else
                        "IPv4 forwarding is off (the daemon turns it on for a live gateway)"))
    return checks


def network_checks(backend, configured, remote, list_dbs):
    """The host's network backend (``backend`` as read from network.conf, whose first word
    is ``configured``, None without the file) and, on Open vSwitch, whether OVSDB at
    ``remote`` answers ``list_dbs(remote)``."""
    said = ("network.conf says %r" % configured if configured is not None
            else "no network.conf: XAPI's default")
    checks = [Check("network backend", OK, "%s (%s)" % (
        "Open vSwitch" if backend == "openvswitch" else "Linux bridges", said))]
    if backend == "openvswitch":
        try:
            names = list_dbs(remote)
        except AgentError as exc:
            checks.append(Check("ovsdb", FAIL, "%s; is openvswitch running? (systemctl "
                                "status openvswitch; [agent] ovsdb sets the socket)" % exc))
        else:
            if "Open_vSwitch" in names:
                checks.append(Check("ovsdb", OK, "OVSDB answers at %s (databases: %s)"
                                    % (remote, ", ".join(names))))
            else:
                checks.append(Check("ovsdb", FAIL, "OVSDB at %s has no Open_vSwitch "
                                    "database (only: %s)" % (remote, ", ".join(names) or
                                                             "none")))
    return checks


def _backend(path):
    try:
        target = os.path.realpath(path)
    except OSError:
        target = path
    if not os.path.exists(target):
        return Check("iptables backend", WARN, "%s not found; the daemon uses libiptc "
                                               "(legacy) directly" % path)
    if "nft" in os.path.basename(target):
        return Check("iptables backend", WARN, "%s is the nft variant (%s): the daemon "
                     "writes legacy x_tables through libiptc, so `iptables -S` will not show "
                     "its rules; use iptables-legacy, as Dom0 does" % (path, target))
    return Check("iptables backend", OK, "%s is legacy x_tables (%s), like the daemon's "
                                         "libiptc" % (path, os.path.basename(target)))


def worst(checks):
    statuses = [c.status for c in checks]
    return FAIL if FAIL in statuses else WARN if WARN in statuses else OK


def daemon_checks(status):
    """Checks of the running daemon from its status (status.json's content): its rounds
    and its API listeners. ``status`` None (no daemon) gives none. A failing check is also
    a problem that /v1/health reports (``problems``)."""
    if not status:
        return []
    checks = []
    failure = status.get("round_failure")
    if failure:
        checks.append(Check("reconciler", FAIL, "reconcile rounds fail (%d in a row, retried "
                                                "with backoff): %s"
                            % (failure["consecutive"], failure["message"])))
    elif status.get("rounds"):
        checks.append(Check("reconciler", OK, "the last reconcile round succeeded"))
    connection = status.get("ovsdb")
    if connection:   # an Open vSwitch host: the daemon's own OVSDB connection
        if connection.get("connected"):
            checks.append(Check("ovsdb connection", OK, "the daemon is connected to OVSDB "
                                "at %s (Open vSwitch %s)" % (connection.get("remote"),
                                                             connection.get("version") or "?")))
        else:
            # only a problem while links need it; gateways never do
            checks.append(Check("ovsdb connection", FAIL if status.get("links") else WARN,
                                "the daemon is not connected to OVSDB at %s (%s; it retries "
                                "with backoff): VLAN links are neither made nor repaired "
                                "meanwhile; gateways are not affected"
                                % (connection.get("remote"), connection.get("reason"))))
    api = status.get("api") or {}
    if api.get("tcp_error"):
        checks.append(Check("api tcp", FAIL, "the API is not served on TCP %s: %s (the Unix "
                                             "socket and the gateways run; fix it, then "
                                             "restart the daemon)"
                            % (api.get("listen"), api["tcp_error"])))
    elif api.get("listen"):
        checks.append(Check("api tcp", OK, "the API is served on TCP %s" % api["listen"]))
    return checks


def problems(status):
    """What /v1/health lists as problems: the details of the failing daemon checks."""
    return [c.detail for c in daemon_checks(status) if c.status == FAIL]
