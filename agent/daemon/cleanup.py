"""Remove everything the daemon ever added: our jumps and chains, the addresses it
recorded as its own, ip_forward if it was the one to turn it on, and on an Open vSwitch
host its own ports in OVSDB (the VLAN links' patch ports: left behind, they would keep
joining networks after an uninstall)."""
import logging

from agent.adapters.iptables import Iptables, XtablesLock
from agent.adapters.netlink import Netlink
from agent.adapters.statefile import StateFile
from agent.adapters.sysctl import Sysctl
from agent.core.planner import owned_link
from agent.errors import KernelError

log = logging.getLogger(__name__)


def cleanup(settings):
    """Returns a dict summary of what was removed."""
    state = StateFile(settings.state_dir)
    owned, ip_forward_was = state.load()
    summary = {"rules": 0, "addresses": [], "ip_forward_restored": False}
    with XtablesLock(settings.xtables_lock, settings.xtables_wait):
        summary["rules"] = Iptables().remove_all()
    netlink = Netlink()
    try:
        links, addresses, _routes = netlink.dump()
        by_name = {link.name: link for link in links}
        present = set(addresses)
        for bridge, record in sorted(owned.items()):
            link = owned_link(bridge, record, by_name)
            if link is not None and (link.index, record.address) in present:
                netlink.remove_address(link.index, record.address)
                summary["addresses"].append("%s on %s" % (record.address, link.name))
    finally:
        netlink.close()
    if ip_forward_was is False:
        try:
            Sysctl().set_ip_forward(False)
            summary["ip_forward_restored"] = True
        except KernelError as exc:
            log.warning("could not restore ip_forward: %s", exc)
    summary["ovs_ports"], summary["ovs_problem"] = remove_ovs_ports(settings)
    state.remove()
    return summary


def remove_ovs_ports(settings, timeout=5.0):
    """(what was removed, why nothing could be: None) of the daemon's own OVSDB ports,
    every kind; nothing to do on a Linux-bridge host."""
    from agent.adapters import ovsdb
    if ovsdb.network_backend(settings.network_conf)[0] != ovsdb.OPENVSWITCH:
        return [], None
    connection = ovsdb.Ovsdb(settings.ovsdb).start()
    try:
        if not connection.wait_connected(timeout):
            log.warning("own OVS ports not removed: %s", connection.reason)
            return [], connection.reason
        _results, writes = connection.sync_ports(None, [])
        return writes, None
    finally:
        connection.stop()


def describe(summary):
    """One line for people: what ``cleanup`` removed."""
    ports, problem = summary.get("ovs_ports") or [], summary.get("ovs_problem")
    return "removed %d rule(s); addresses: %s%s%s" % (
        summary["rules"], ", ".join(summary["addresses"]) or "none",
        "; ip_forward set back to 0" if summary["ip_forward_restored"] else "",
        "; own OVS ports not checked (%s)" % problem if problem else
        "; OVS: %s" % "; ".join(ports) if ports else "")
