"""Tunnels and the plugging of PIFs, as xapi does them (xen-api ocaml/xapi/xapi_tunnel.ml,
xapi_pif.ml plug/unplug, xapi_pif_helpers.ml tunnel_is_allowed_on_pif).

``tunnel.create(transport_PIF, network, protocol)``, in xapi's order: the network must be
managed (NETWORK_UNMANAGED), have no other PIF on the transport PIF's host
(NETWORK_ALREADY_CONNECTED [host, pif]); the transport PIF must be managed
(PIF_UNMANAGED) and not a tunnel access PIF (IS_TUNNEL_ACCESS_PIF) nor a bond slave;
every host of the pool must run Open vSwitch (OPENVSWITCH_NOT_ACTIVE: xapi refuses
tunnels on the Linux bridge backend). It makes the access PIF (device ``tunnel<N>``, the
lowest N free among the host's access PIFs, on the network, MTU -1, not physical, no IP)
and the tunnel (status ``{active: false}``, the protocol, gre when none is given), then
plugs the access PIF: a transport PIF without IP configuration fails the plug with
TRANSPORT_PIF_NOT_CONFIGURED, and, as in xapi, the records made stay. A plugged access
PIF makes networkd create the network's bridge on that host (agent.xapisim.vms
sync_bridges): an Open vSwitch bridge with the network's ``xs-network-uuids``, and no
tunnel port (whoever drives the tunnels adds those; ``status`` is theirs to write).

``tunnel.destroy`` unplugs and destroys the access PIF (the bridge goes on that host) and
the tunnel. ``PIF.plug`` / ``PIF.unplug`` set ``currently_attached`` (an access PIF's
plug checks its transport PIF as above); the management PIF is not unplugged
(PIF_IS_MANAGEMENT_INTERFACE).
"""
import random

from agent.xapisim.engine import XapiFailure
from agent.xapisim.datamodel import NULL_REF

PROTOCOLS = ("gre", "vxlan")  # enum tunnel_protocol; gre is the parameter's default


def install(engine):
    engine.handlers["tunnel.create"] = tunnel_create
    engine.handlers["tunnel.destroy"] = tunnel_destroy
    engine.handlers["PIF.plug"] = pif_plug
    engine.handlers["PIF.unplug"] = pif_unplug


def tunnel_create(engine, session, transport_pif, network, protocol="gre"):
    if protocol not in PROTOCOLS:
        raise XapiFailure("INVALID_VALUE", "protocol", protocol)
    net = engine.record("network", network)
    if not net["managed"]:
        raise XapiFailure("NETWORK_UNMANAGED", network)
    transport = engine.record("PIF", transport_pif)
    host = transport["host"]
    others = [p for p in net["PIFs"] if engine.record("PIF", p)["host"] == host]
    if others:
        raise XapiFailure("NETWORK_ALREADY_CONNECTED", host, others[0])
    if not transport["managed"]:
        raise XapiFailure("PIF_UNMANAGED", transport_pif)
    if transport["tunnel_access_PIF_of"]:
        raise XapiFailure("IS_TUNNEL_ACCESS_PIF", transport_pif)
    if transport["bond_slave_of"] != NULL_REF:
        raise XapiFailure("CANNOT_ADD_TUNNEL_TO_BOND_SLAVE", transport_pif)
    for record in engine.objects["host"].values():
        if record["software_version"].get("network_backend") != "openvswitch":
            raise XapiFailure("OPENVSWITCH_NOT_ACTIVE")
    devices = {pif["device"] for pif in engine.objects["PIF"].values()
               if pif["host"] == host and pif["tunnel_access_PIF_of"]}
    n = 0
    while "tunnel%d" % n in devices:
        n += 1
    access = engine.create(
        "PIF", device="tunnel%d" % n, device_name="tunnel%d" % n, network=network, host=host,
        MAC="02:%02x:%02x:%02x:%02x:%02x" % tuple(random.randint(0, 255) for _ in range(5)),
        MTU=-1, VLAN=-1, metrics=transport["metrics"], physical=False,
        currently_attached=False, ip_configuration_mode="None", IPv6=[""],
        primary_address_type=transport["primary_address_type"], managed=True)
    tunnel = engine.create("tunnel", access_PIF=access, transport_PIF=transport_pif,
                           status={"active": "false"}, other_config={}, protocol=protocol)
    pif_plug(engine, session, access)
    return tunnel


def tunnel_destroy(engine, session, tunnel):
    access = engine.record("tunnel", tunnel)["access_PIF"]
    if access in engine.objects["PIF"]:
        pif_unplug(engine, session, access)
        engine.destroy("PIF", access)
    engine.destroy("tunnel", tunnel)
    _sync(engine)
    return ""


def pif_plug(engine, session, pif):
    record = engine.record("PIF", pif)
    if not record["managed"]:
        raise XapiFailure("PIF_UNMANAGED", pif)
    for tunnel in record["tunnel_access_PIF_of"]:
        transport = engine.record("tunnel", tunnel)["transport_PIF"]
        if engine.record("PIF", transport)["ip_configuration_mode"] == "None":
            raise XapiFailure("TRANSPORT_PIF_NOT_CONFIGURED", transport)
        pif_plug(engine, session, transport)
    if not record["currently_attached"]:
        engine.set_field("PIF", pif, "currently_attached", True)
        _sync(engine)
    return ""


def pif_unplug(engine, session, pif):
    record = engine.record("PIF", pif)
    if record["management"]:
        raise XapiFailure("PIF_IS_MANAGEMENT_INTERFACE", pif)
    if record["currently_attached"]:
        engine.set_field("PIF", pif, "currently_attached", False)
        _sync(engine)
    return ""


def _sync(engine):
    from agent.xapisim.vms import sync_bridges
    sync_bridges(engine)
