"""Networks: private or VLAN, with an optional gateway kept in the network's other_config.

Every operation validates its input before touching XAPI, and undoes what it created if a
later step fails (agent.service.steps: also when XAPI goes away half way); the error then
names the failing step and XAPI's error code and parameters. Checking a gateway against
the other networks and writing it happen under the pool's lock (``steps.pool``): of two
requests that conflict, one wins and the other gets a Conflict naming it.
"""
import logging

from agent.core import conflicts, desired, links, model, tunnels
from agent.errors import GatewayInvalid
from agent.service import steps, views
from agent.service.errors import Conflict, InvalidInput, NotFound
from agent.service.steps import field, step

log = logging.getLogger(__name__)


class Networks(object):
    def __init__(self, xenapi):
        self.x = xenapi  # a logged-in session's ``.xenapi``

    # ---- reading -----------------------------------------------------------------------
    def find(self, key, records=None):
        """(ref, record) of the network whose uuid or name_label is ``key`` (none being
        created right now), among ``records`` when given (else read now)."""
        records = self._records() if records is None else records
        for ref, rec in records.items():
            if rec["uuid"] == key:
                return ref, rec
        named = [(ref, rec) for ref, rec in records.items() if rec["name_label"] == key]
        if len(named) > 1:
            raise Conflict("%d networks are named %s; use the uuid" % (len(named), key),
                           name=key, uuids=sorted(rec["uuid"] for _r, rec in named))
        if not named:
            raise NotFound("no network with uuid or name %s" % key, network=key)
        return named[0]

    def view(self, key):
        """The view (agent.service.views) of the network ``key``."""
        records = self._records()
        ref, _rec = self.find(key, records)
        return views.network(views.Records(self.x, network=records), ref)

    def _records(self):
        """Every network record but those being created right now."""
        return {r: rec for r, rec in self.x.network.get_all_records().items()
                if not steps.in_flight(rec)}

    # ---- changes -----------------------------------------------------------------------
    def create(self, name, gateway=None, vlan=None, description="", marks=None, link=None,
               span="host", vni=None, transport=None):
        """Create a private network, or a VLAN one (``vlan={"tag": N, "pif": device}``),
        with an optional ``gateway={"address": CIDR, "nat": bool, "forwards": [{"proto":
        "tcp"|"udp", "port": N, "to": "ADDRESS:PORT"}], "inbound": [CIDR or "any"]}`` and
        an optional ``link={"parent": uuid or name, "tag": N}`` (a VLAN of another private
        network). ``span="pool"``: a private network across the pool's hosts
        (agent.core.tunnels): MTU 1450, a VNI (``vni``, default the lowest free one) in its
        other_config and a VXLAN tunnel on every host over ``transport`` (a PIF device;
        default each host's management PIF). ``marks``: extra other_config keys (a
        topology marks what it manages). Returns the record."""
        name = field(model.parse_name, name, "name")
        span = field(model.parse_span, span, "span")
        tag = device = None
        if vlan is not None:
            tag, device = _vlan(vlan)
        if span == "pool":
            if vlan is not None:
                raise InvalidInput("a VLAN network spans the hosts that have its PIF "
                                   "already; give span pool or vlan, not both", field="span")
            vni = field(model.parse_vni, vni, "vni") if vni is not None else None
            if transport is not None:
                transport = field(model.parse_bridge, transport, "transport")
        elif vni is not None or transport is not None:
            raise InvalidInput("%s is for a network that spans the pool (span pool)"
                               % ("vni" if vni is not None else "transport"),
                               field="vni" if vni is not None else "transport")
        with steps.pool(self.x).locked():
            config = self._gateway_config(gateway, exclude=None)
            config.update(marks or {})
            records = self.x.network.get_all_records()
            if any(rec["name_label"] == name for rec in records.values()):
                raise Conflict("a network named %s exists already" % name, field="name",
                               name=name)
            config.update(self._link_config(link, None, name=name, vlan=vlan is not None))
            pif = self._physical_pif(device) if vlan is not None else None
            values = {"name_label": name, "name_description": description}
            transports = []
            if span == "pool":
                transports = self._transports(transport)
                config[desired.VNI] = str(self._vni(records, vni))
                values["MTU"] = str(tunnels.MTU)
            with steps.Operation(self.x, "create network %s" % name) as op:
                config.update(op.mark)
                values["other_config"] = config
                net = step("create the network", self.x.network.create, values)
                op.undo("destroy the network", steps.discard_network, self.x, net)
                if vlan is not None:
                    step("create VLAN %d on %s" % (tag, device),
                         self.x.pool.create_VLAN_from_PIF, pif, net, str(tag))
                for host_name, ref in transports:
                    step("create the tunnel on host %s" % host_name, self.x.tunnel.create,
                         ref, net, tunnels.PROTOCOL)
                op.commit("finish the network", self.x.network.remove_from_other_config,
                          net, steps.MARK)
        return self.x.network.get_record(net)

    def _vni(self, records, vni):
        """``vni`` when free (Conflict naming the network that has it), else the lowest
        free one."""
        if vni is None:
            try:
                return tunnels.allocate(records)
            except GatewayInvalid as exc:
                raise Conflict(str(exc), field="vni")
        clash = tunnels.conflict(records, vni)
        if clash:
            raise Conflict(clash, field="vni")
        return vni

    def _transports(self, device):
        """[(host name, PIF ref)]: each host's transport PIF (agent.core.tunnels.transports),
        refused (Conflict) unless every host can carry tunnels."""
        try:
            return tunnels.transports(self.x.host.get_all_records(),
                                      self.x.PIF.get_all_records(), device)
        except GatewayInvalid as exc:
            raise Conflict(str(exc), **exc.details)

    def set_gateway(self, key, gateway):
        """Set (``gateway`` a dict) or remove (None) a network's gateway."""
        with steps.pool(self.x).locked():
            ref, rec = self.find(key)
            self._replace_gateway(ref, rec, self._gateway_config(gateway, exclude=ref))
        return self.x.network.get_record(ref)

    def set_link(self, key, link):
        """Declare the network a VLAN of another (``link={"parent": uuid or name, "tag":
        N}``), or drop its link (None)."""
        with steps.pool(self.x).locked():
            ref, rec = self.find(key)
            config = self._link_config(link, ref)
            other = {k: v for k, v in rec["other_config"].items() if k != desired.LINK}
            other.update(config)
            step("write the link", self.x.network.set_other_config, ref, other)
        return self.x.network.get_record(ref)

    def _replace_gateway(self, ref, rec, config):
        """Replace the gateway keys in one call: a lost connection cannot leave half a
        gateway (the other keys, the link's and the VNI too, are kept as read under the
        pool's lock)."""
        other = {k: v for k, v in rec["other_config"].items()
                 if not desired.has_gateway({k: v})}
        other.update(config)
        step("write the gateway", self.x.network.set_other_config, ref, other)

    def delete(self, key):
        """Delete a network: refused while VIFs use it (naming their VMs); its gateway
        goes first, then its VLAN, then the network."""
        ref, rec = self.find(key)
        if rec["other_config"].get("is_host_internal_management_network") == "true":
            raise Conflict("%s is the host internal management network; it cannot be "
                           "deleted" % rec["name_label"], network=rec["uuid"])
        if rec["VIFs"]:
            users = sorted(set(self.x.VM.get_name_label(self.x.VIF.get_VM(vif))
                               for vif in rec["VIFs"]))
            raise Conflict("network %s is in use by %s" % (rec["name_label"], ", ".join(users)),
                           network=rec["uuid"], vms=users)
        self._replace_gateway(ref, rec, {})
        steps.discard_network(self.x, ref)

    # ---- helpers -----------------------------------------------------------------------
    def _gateway_config(self, gateway, exclude):
        """The other_config keys of ``gateway``, validated (InvalidInput) and checked
        against the gateways of the other networks (Conflict) before any change."""
        if gateway is None:
            return {}
        if not isinstance(gateway, dict):
            raise InvalidInput("gateway must be an object with address, nat and forwards",
                               field="gateway")
        unknown = sorted(set(gateway) - {"address", "nat", "forwards", "public", "inbound",
                                         "host"})
        if unknown:
            raise InvalidInput("gateway has unknown field(s) %s" % ", ".join(unknown),
                               field="gateway." + unknown[0])
        address = field(model.parse_address, gateway.get("address"), "gateway.address")
        nat = field(model.parse_bool, gateway.get("nat", True), "gateway.nat")
        public = field(model.parse_bool, gateway.get("public", False), "gateway.public")
        inbound = field(model.parse_inbound, gateway.get("inbound", []), "gateway.inbound")
        host = field(model.parse_host, gateway["host"], "gateway.host") \
            if gateway.get("host") is not None else ""
        requested = _forwards(gateway.get("forwards", []))
        index_of = {f.key(): i for i, f in enumerate(requested)}  # sorted -> as requested
        try:
            forwards = model.check_gateway(address, requested, public, prefix="gateway.",
                                           item_field="gateway.forwards[%d]", inbound=inbound)
        except GatewayInvalid as exc:
            raise InvalidInput(str(exc), field=exc.details.get("field", "gateway"))
        others, _ = desired.gateways_from_networks(
            {r: rec for r, rec in self.x.network.get_all_records().items() if r != exclude})
        claims = conflicts.Claims((gw.name, gw.network, gw.forwards)
                                  for gw in sorted(others.values(), key=lambda g: g.name))
        clash = claims.conflict(address.network, forwards)
        if clash is not None:
            raise Conflict(clash.reason, network=clash.owner, field=(
                "gateway.address" if clash.index is None else
                "gateway.forwards[%d].port" % index_of[forwards[clash.index].key()]))
        return desired.other_config(address, nat, forwards, public, inbound, host)

    def _link_config(self, link, ref, name=None, vlan=False):
        """The other_config key of ``link`` ({"parent": uuid or name, "tag": N}, or None)
        on the network ``ref`` (None: the one being created, ``name``, a VLAN network if
        ``vlan``): validated (InvalidInput; NotFound for a parent that is no network) and
        checked with every other link by agent.core.links (its ``invalid`` is an
        InvalidInput, its ``refused`` a Conflict) before any change."""
        if link is None:
            return {}
        if not isinstance(link, dict):
            raise InvalidInput("link must be an object with parent and tag", field="link")
        unknown = sorted(set(link) - {"parent", "tag"})
        if unknown:
            raise InvalidInput("link has an unknown field %s" % unknown[0],
                               field="link." + unknown[0])
        for key in ("parent", "tag"):
            if key not in link:
                raise InvalidInput("link has no field %s" % key, field="link." + key)
        tag = field(model.parse_tag, link["tag"], "link.tag")
        key = field(model.parse_parent, link["parent"], "link.parent")
        records = self._records()
        try:
            _pref, parent = self.find(key, records)
        except NotFound:
            raise NotFound(links.unknown_parent(key), field="link.parent", network=key)
        value = model.format_link(parent["uuid"], tag)
        after = dict(records)
        if ref is None:
            ref = "(new)"
            after[ref] = {"uuid": "(new %s)" % name, "name_label": name, "bridge": "(new)",
                          "PIFs": ["(its VLAN)"] if vlan else [], "other_config": {}}
        rec = after[ref]
        after[ref] = dict(rec, other_config=dict(rec["other_config"], **{desired.LINK: value}))
        problem = links.check(records, after, [rec["uuid"]])
        if problem is not None:
            state, reason = problem
            raise (InvalidInput if state == links.INVALID else Conflict)(
                "link: %s" % reason, field="link")
        return {desired.LINK: value}

    def _physical_pif(self, device):
        for ref, pif in self.x.PIF.get_all_records().items():
            if pif["device"] == device and pif["physical"]:
                return ref
        raise NotFound("no physical interface %s on this host" % device, field="vlan.pif")


def _forwards(value):
    """The Forward values of a gateway's ``forwards`` list, in the request's order; errors
    name the item and its field, e.g. ``gateway.forwards[1].to`` (indexes count from 0).
    Their checks against the gateway are model.check_gateway's."""
    if not isinstance(value, list):
        raise InvalidInput("gateway.forwards must be a list of objects with proto, port "
                           "and to", field="gateway.forwards")
    forwards = []
    for index, item in enumerate(value):
        field = "gateway.forwards[%d]" % index
        if not isinstance(item, dict):
            raise InvalidInput("%s must be an object with proto, port and to, like "
                               '{"proto": "tcp", "port": 8080, "to": "172.16.1.10:80"}'
                               % field, field=field)
        unknown = sorted(set(item) - {"proto", "port", "to"})
        missing = [k for k in ("proto", "port", "to") if k not in item]
        if unknown or missing:
            name = (unknown or missing)[0]
            raise InvalidInput("%s has %s field %s" % (field, "an unknown" if unknown else
                                                       "no", name),
                               field="%s.%s" % (field, name))
        port = item["port"]
        if isinstance(port, bool) or not isinstance(port, int):
            raise InvalidInput("%s.port must be a whole number from 1 to 65535, not %r"
                               % (field, port), field=field + ".port")
        try:
            forwards.append(model.parse_forward(item["proto"], port, item["to"], field))
        except GatewayInvalid as exc:
            raise InvalidInput(str(exc), field=exc.details.get("field", field))
    return forwards


def _vlan(vlan):
    if not isinstance(vlan, dict):
        raise InvalidInput("vlan must be an object with tag and pif", field="vlan")
    tag = vlan.get("tag")
    if isinstance(tag, bool) or not isinstance(tag, int) or not 0 <= tag <= 4094:
        raise InvalidInput("vlan.tag must be a whole number from 0 to 4094, not %r" % (tag,),
                           field="vlan.tag")
    device = vlan.get("pif", "eth0")
    if not isinstance(device, str) or not device:
        raise InvalidInput("vlan.pif must name a physical interface such as eth0",
                           field="vlan.pif")
    return tag, device
