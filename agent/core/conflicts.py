"""What gateways hold on the host, and which new gateway would clash with them (pure).

A gateway holds its subnet (no other gateway's subnet may overlap it) and every
(protocol, port) it forwards (a forward takes the port on all of the host's addresses, so
one gateway at most may publish it). This module is the one home of both rules: the
daemon's planner (a gateway refused at run time), the config file (both gateways in one
file), the service layer (API requests, against the other networks' gateways) and the
topology file and its plan all ask ``Claims.conflict`` and report its sentence.
"""
import bisect
from collections import namedtuple


class Conflict(namedtuple("Conflict", "kind index owner reason")):
    """``kind``: "subnet" or "port"; ``index``: the position of the clashing forward (None
    for a subnet); ``owner``: the name of the gateway that holds it; ``reason``: the
    sentence every entry point reports."""

    __slots__ = ()


class Claims(object):
    """Subnets and forwarded ports held by gateways, in the order they were added (the
    earlier one keeps what it holds)."""

    def __init__(self, gateways=()):
        self._subnets = NetworkIndex()
        self._owners = []     # (name, network), by the order added
        self._ports = {}      # (proto, port) -> (name, Forward)
        for name, network, forwards in gateways:
            self.add(name, network, forwards)

    def conflict(self, network, forwards):
        """The first Conflict of a gateway of subnet ``network`` forwarding ``forwards``
        (core.model.Forward values) with the gateways added so far, or None."""
        hits = self._subnets.overlapping(network)
        if hits:
            owner, theirs = self._owners[min(hits)]
            return Conflict("subnet", None, owner, "subnet %s overlaps gateway %s (%s)"
                            % (network, owner, theirs))
        for index, fwd in enumerate(forwards):
            taken = self._ports.get((fwd.proto, fwd.port))
            if taken is not None:
                owner, theirs = taken
                return Conflict("port", index, owner,
                                "%s port %d is already forwarded by gateway %s (to %s)"
                                % (fwd.proto, fwd.port, owner, theirs.to))
        return None

    def add(self, name, network, forwards):
        self._subnets.add(network, len(self._owners))
        self._owners.append((name, network))
        for fwd in forwards:
            self._ports.setdefault((fwd.proto, fwd.port), (name, fwd))


class NetworkIndex(object):
    """Networks found by overlap in O(prefix lengths present + log n).

    CIDR blocks are nested or disjoint, so X overlaps Q iff X contains Q's first address
    (X is Q or one of its supernets: a dict look-up per prefix length in use) or Q
    contains X's first address (a bisect over the sorted first addresses)."""

    def __init__(self):
        self.by_key = {}      # (first address as int, prefixlen) -> [item]
        self.starts = []      # sorted keys
        self.prefixes = []    # sorted prefix lengths in use

    def add(self, network, item):
        key = (int(network.network_address), network.prefixlen)
        items = self.by_key.get(key)
        if items is None:
            self.by_key[key] = items = []
            bisect.insort(self.starts, key)
            if network.prefixlen not in self.prefixes:
                bisect.insort(self.prefixes, network.prefixlen)
        items.append(item)

    def overlapping(self, network):
        first = int(network.network_address)
        last = int(network.broadcast_address)
        plen = network.prefixlen
        found = []
        for p in self.prefixes:  # Q itself and its supernets
            if p > plen:
                break
            mask = (0xFFFFFFFF << (32 - p)) & 0xFFFFFFFF if p else 0
            found.extend(self.by_key.get((first & mask, p), ()))
        i = bisect.bisect_left(self.starts, (first, plen + 1))
        while i < len(self.starts) and self.starts[i][0] <= last:  # strict subnets of Q
            found.extend(self.by_key[self.starts[i]])
            i += 1
        return found
