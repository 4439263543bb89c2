"""VLAN links between private networks: the contract between what users declare and what
the reconciler writes to Open vSwitch (pure, no I/O).

A network declared a VLAN of another (``xapi-gateway.link=<parent network uuid>:<tag>`` in
its other_config) is joined to its parent by an OVS patch-port pair: one port on the
child's bridge, its peer on the parent's bridge with ``tag=<tag>`` (the tag goes on the
parent's side: measured, a tag on the child's side passes nothing). Every frame from the
child's bridge enters the parent's as VLAN ``tag``; so a VM with one NIC on the child
reaches the parent's ports of that tag and no other.

The user-facing side (parsing, validation, entry points, states) produces DesiredLink
values; the reconciler's OVS side consumes them and makes, repairs and removes the pairs.
"""
from collections import namedtuple


class DesiredLink(namedtuple("DesiredLink", "network child_bridge parent parent_bridge tag")):
    """One patch-port pair that should exist on this host.

    ``network``: the child network's uuid (the one whose other_config holds the link);
    ``child_bridge``: its bridge on this host; ``parent``: the parent network's uuid;
    ``parent_bridge``: the parent's bridge on this host; ``tag``: int, 1-4094, set on the
    parent's patch port.
    """
    __slots__ = ()
