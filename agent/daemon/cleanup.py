"""Remove everything the daemon ever added: our jumps and chains, the addresses it
recorded as its own, and ip_forward if it was the one to turn it on."""
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
    state.remove()
    return summary


def describe(summary):
    """One line for people: what ``cleanup`` removed."""
    return "removed %d rule(s); addresses: %s%s" % (
        summary["rules"], ", ".join(summary["addresses"]) or "none",
        "; ip_forward set back to 0" if summary["ip_forward_restored"] else "")
