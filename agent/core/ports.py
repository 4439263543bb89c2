"""The Open vSwitch ports the daemon owns, as data (pure, no I/O).

Every port the daemon makes in OVSDB is described by a ``PortSpec``: one Port with one
Interface of the same name, on one bridge. The OVSDB adapter makes the ports of a kind
equal to a list of specs (agent.adapters.ovsdb.Ovsdb.sync_ports) and marks each row it
creates, Port and Interface alike, in external_ids:

- ``xapi-gateway-owner=xapi-gateway``: the daemon made it; it never touches a row
  without this mark (and a row whose mark someone removed is no longer its own);
- ``xapi-gateway-kind``: which concern it serves (``link``: a VLAN link's patch port;
  others, e.g. tunnel ports, add their own kind through the same adapter);
- ``xapi-gateway-for``: the group it belongs to (a link: the child network's uuid).

Specs of one ``key`` are all or nothing: while any of their bridges is missing, none of
them is kept (a link with one bridge gone leaves no half-pair behind).
"""
from collections import namedtuple

OWNER_KEY = "xapi-gateway-owner"
OWNER = "xapi-gateway"
KIND_KEY = "xapi-gateway-kind"
FOR_KEY = "xapi-gateway-for"

LINK = "link"

# states of a group of ports (a link, a tunnel), as the adapter reports them
APPLIED, WAITING, ERROR = "applied", "waiting", "error"


class PortSpec(namedtuple("PortSpec", "name bridge kind key type options tag ids")):
    """One port the daemon wants: Port and Interface ``name`` on ``bridge``, of Interface
    ``type`` ("patch", "vxlan"...; "" for a plain system port) with ``options`` (dict of
    str), VLAN ``tag`` (int, or None for a trunk), and ``ids``: more external_ids (dict of
    str) besides the three marks, which ``external_ids()`` adds."""
    __slots__ = ()

    def external_ids(self):
        ids = dict(self.ids)
        ids.update({OWNER_KEY: OWNER, KIND_KEY: self.kind, FOR_KEY: self.key})
        return ids


def is_own(external_ids, kind=None):
    """Whether a row with these external_ids is the daemon's (of ``kind``, if given)."""
    ids = external_ids or {}
    return ids.get(OWNER_KEY) == OWNER and (kind is None or ids.get(KIND_KEY) == kind)


def link_port_names(network):
    """(child side, parent side) port names of the link of child network ``network``:
    unique per link (a network has at most one parent), 14 characters, within a Linux
    device name's 15 whatever the datapath makes of them."""
    short = network.replace("-", "")[:10]
    return "xgwc" + short, "xgwp" + short


def link_ports(link):
    """The patch-port pair of an agent.core.links.DesiredLink: one port on the child's
    bridge, its peer on the parent's bridge carrying ``tag`` (measured: the tag works on
    the parent's side, the trunk; on the child's side nothing passes)."""
    child, parent = link_port_names(link.network)
    ids = {"xapi-gateway-parent": link.parent, "xapi-gateway-tag": str(link.tag)}
    return [
        PortSpec(child, link.child_bridge, LINK, link.network, "patch", {"peer": parent},
                 None, ids),
        PortSpec(parent, link.parent_bridge, LINK, link.network, "patch", {"peer": child},
                 int(link.tag), ids),
    ]
