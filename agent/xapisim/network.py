"""Networks, PIFs and VLANs as xapi treats them (the facts in agent/xapisim/data/README.md).

- ``network.create`` with ``bridge=""`` gets ``xapi<N>``, the lowest free N; a given
  bridge name over 15 characters or starting with xen, xapi, vif, tap or eth is
  INVALID_VALUE, a taken one BRIDGE_NAME_EXISTS.
- The host internal management network (HIMN, bridge ``xenapi``) cannot be destroyed;
  nor can a network that VIFs or PIFs use.
- ``VLAN.create`` / ``pool.create_VLAN_from_PIF`` make a plugged untagged PIF with
  ``VLAN=tag`` on the network.
"""
from agent.xapisim.engine import XapiFailure

RESERVED_PREFIXES = ("xen", "xapi", "vif", "tap", "eth")
HIMN_CONFIG = {"is_host_internal_management_network": "true",
               "is_guest_installer_network": "true",
               "ip_begin": "169.254.0.1", "ip_end": "169.254.255.254",
               "netmask": "255.255.0.0"}


def install(engine):
    """Register the handlers on ``engine``."""
    engine.handlers["network.create"] = network_create
    engine.handlers["network.destroy"] = network_destroy
    engine.handlers["VLAN.create"] = vlan_create
    engine.handlers["pool.create_VLAN_from_PIF"] = create_vlan_from_pif
    engine.handlers["VLAN.destroy"] = vlan_destroy


def seed(engine, host):
    """The networks every host has: eth0's (bridge xenbr0, with its physical, management
    PIF) and the HIMN. Returns (eth0 network, eth0 PIF, HIMN)."""
    net = engine.create("network", name_label="Pool-wide network associated with eth0",
                        bridge="xenbr0", MTU=1500)
    pif = engine.create("PIF", device="eth0", network=net, host=host, MAC="02:00:00:00:00:01",
                        MTU=1500, VLAN=-1, physical=True, currently_attached=True,
                        management=True, ip_configuration_mode="DHCP")
    himn = engine.create("network", name_label="Host internal management network",
                         name_description="Network on which guests will be assigned a "
                                          "private link-local IP address which can be used "
                                          "to talk XenAPI",
                         bridge="xenapi", other_config=dict(HIMN_CONFIG), MTU=1500)
    return net, pif, himn


def is_himn(record):
    return record["other_config"].get("is_host_internal_management_network") == "true"


def network_create(engine, session, args):
    if not isinstance(args, dict) or "other_config" not in args:
        raise XapiFailure("FIELD_TYPE_ERROR", "other_config")
    bridge = args.get("bridge", "")
    taken = set(rec["bridge"] for rec in engine.objects["network"].values())
    if bridge == "":
        n = 0
        while "xapi%d" % n in taken:
            n += 1
        bridge = "xapi%d" % n
    else:
        if len(bridge) > 15 or bridge.startswith(RESERVED_PREFIXES):
            raise XapiFailure("INVALID_VALUE", "bridge", bridge)
        if bridge in taken:
            raise XapiFailure("BRIDGE_NAME_EXISTS", bridge)
    message = engine.model.classes["network"].messages["create"]
    values = dict(args, bridge=bridge)
    return engine._construct(engine.model.classes["network"], message, values)


def network_destroy(engine, session, ref):
    record = engine.record("network", ref)
    if is_himn(record):
        raise XapiFailure("CANNOT_DESTROY_SYSTEM_NETWORK", ref)
    if record["VIFs"]:
        raise XapiFailure("NETWORK_CONTAINS_VIF", *record["VIFs"])
    if record["PIFs"]:
        raise XapiFailure("NETWORK_CONTAINS_PIF", *record["PIFs"])
    engine.destroy("network", ref)
    return ""


def vlan_create(engine, session, tagged_pif, tag, network):
    vlan = _make_vlan(engine, tagged_pif, _tag(tag), network)[0]
    _sync(engine)
    return vlan


def create_vlan_from_pif(engine, session, pif, network, tag):
    """xapi_pool.ml: the VLAN on every PIF of ``pif``'s network whose host is live (one
    per host), undoing those made when one fails; returns the untagged PIFs."""
    tag = _tag(tag)
    parent = engine.record("PIF", pif)["network"]
    made = []
    try:
        for ref in list(engine.record("network", parent)["PIFs"]):
            host = engine.record("PIF", ref)["host"]
            metrics = engine.objects["host_metrics"].get(engine.record("host", host)["metrics"])
            if metrics is None or metrics["live"]:
                made.append(_make_vlan(engine, ref, tag, network))
    except XapiFailure:
        for vlan, _untagged in made:
            vlan_destroy(engine, session, vlan)
        raise
    _sync(engine)
    return [untagged for _vlan, untagged in made]


def vlan_destroy(engine, session, vlan_ref):
    """Removes the VLAN and its untagged PIF (unplugged with it)."""
    vlan = engine.record("VLAN", vlan_ref)
    untagged = vlan["untagged_PIF"]
    engine.destroy("VLAN", vlan_ref)
    if untagged in engine.objects["PIF"]:
        engine.destroy("PIF", untagged)
    _sync(engine)
    return ""


def _tag(value):
    try:
        tag = int(value)
    except (TypeError, ValueError):
        raise XapiFailure("VLAN_TAG_INVALID", value)
    if not 0 <= tag <= 4094:
        raise XapiFailure("VLAN_TAG_INVALID", value)
    return tag


def _make_vlan(engine, tagged_ref, tag, network_ref):
    tagged = engine.record("PIF", tagged_ref)
    engine.record("network", network_ref)
    if tagged["VLAN"] != -1:
        raise XapiFailure("PIF_IS_VLAN", tagged_ref)
    for ref, pif in engine.objects["PIF"].items():
        if pif["host"] == tagged["host"] and pif["device"] == tagged["device"] \
                and pif["VLAN"] == tag:
            raise XapiFailure("PIF_VLAN_EXISTS", tagged["device"])
        if pif["network"] == network_ref and pif["host"] == tagged["host"]:
            raise XapiFailure("NETWORK_ALREADY_CONNECTED", network_ref, ref)
    untagged = engine.create("PIF", device=tagged["device"], network=network_ref,
                             host=tagged["host"], MAC=tagged["MAC"], MTU=tagged["MTU"],
                             VLAN=tag, physical=False, currently_attached=True,
                             ip_configuration_mode="None")
    vlan = engine.create("VLAN", tagged_PIF=tagged_ref, untagged_PIF=untagged, tag=tag)
    engine.set_field("PIF", untagged, "VLAN_master_of", vlan)
    return vlan, untagged


def _sync(engine):
    """A VLAN's bridge comes and goes with its plugged PIF on each host (networkd)."""
    from agent.xapisim.vms import sync_bridges
    if hasattr(engine, "dom0"):
        sync_bridges(engine)
