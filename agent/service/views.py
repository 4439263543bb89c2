"""Networks and VMs as a person or a controller wants to see them, built from one read of
XAPI's records: ``Records`` fetches each class with one ``get_all_records`` the first time
a view needs it, and never again for that request. Listing 20 networks (or VMs) costs the
same handful of calls as listing one.

Objects still being created (``steps.in_flight``) are left out of lists: a creation is
all or nothing, also to a reader.
"""
from agent.core import desired, links, placement, tunnels
from agent.service import steps

MIB = 1024 * 1024
GIB = 1024 * MIB
HIMN_KEY = "is_host_internal_management_network"


class Records(object):
    """``records("PIF")`` -> {ref: record} of every PIF, read once."""

    def __init__(self, xenapi, **known):
        self.x = xenapi
        self._classes = dict(known)  # class -> records a caller has read already

    def __call__(self, cls):
        if cls not in self._classes:
            self._classes[cls] = getattr(self.x, cls).get_all_records()
        return self._classes[cls]

    def links(self):
        """agent.core.links' verdict on every network's link, computed once."""
        if "links" not in self._classes:
            self._classes["links"] = links.resolve(self("network"))
        return self._classes["links"]

    def tunnels(self):
        """(pool hosts, {network uuid: tunnels.Shape}) of the spanning networks, computed
        once per request (the pool's hosts, PIFs and tunnels are read for it)."""
        if "_tunnels" not in self._classes:
            records = {cls: self(cls) for cls in ("network", "PIF", "tunnel", "host",
                                                   "host_metrics")}
            pool = placement.snapshot(records["host"], records["host_metrics"],
                                      records["network"], records["PIF"])
            self._classes["_tunnels"] = (pool.hosts, tunnels.shapes(records, pool))
        return self._classes["_tunnels"]


# ---- networks ------------------------------------------------------------------------------
def networks(xenapi):
    """Views of every network, by name."""
    records = Records(xenapi)
    return [network(records, ref) for ref, rec in sorted(
        records("network").items(), key=lambda i: i[1]["name_label"])
        if not steps.in_flight(rec)]


def network(records, ref):
    rec = records("network")[ref]
    config = rec["other_config"]
    gateway = desired.gateway_view(rec)
    vlan = None
    for pif in rec["PIFs"]:
        tag = int(records("PIF")[pif]["VLAN"])
        if tag >= 0:
            vlan = tag
    vms = sorted(set(records("VM")[records("VIF")[vif]["VM"]]["name_label"]
                     for vif in rec["VIFs"]))
    span, vni, shape = "host", None, None
    if desired.VNI in config:
        hosts, shapes = records.tunnels()
        span, found = "pool", shapes.get(rec["uuid"])
        if found is not None:
            vni, shape = found.vni, found.as_dict(hosts)
    return {"uuid": rec["uuid"], "name": rec["name_label"],
            "description": rec["name_description"], "bridge": rec["bridge"], "vlan": vlan,
            "gateway": gateway, "link": link(records, rec),
            "himn": config.get(HIMN_KEY) == "true",
            "vms": vms, "topology": config.get(desired.TOPOLOGY_MARK), "span": span,
            "vni": vni, "tunnels": shape}


def link(records, rec):
    """A network's link as the API shows it: {parent (uuid), parent_name, tag, state,
    reason}, None without one. The state here is agent.core.links' verdict from the
    records (accepted, invalid, refused); the API puts the daemon's own in its place once
    the daemon has seen this link (what the OVS writer made of it, the backend's say)."""
    if desired.LINK not in rec["other_config"]:
        return None
    st = records.links().status[rec["uuid"]]
    return {"parent": st.parent, "parent_name": st.parent_name, "tag": st.tag,
            "state": st.state, "reason": st.reason}


# ---- VMs -----------------------------------------------------------------------------------
def is_vm(rec):
    """A real VM: neither a template nor a control domain."""
    return not rec["is_a_template"] and not rec.get("is_control_domain")


def vms(xenapi):
    """Views of every VM (no templates, no control domain, none being created), by name."""
    records = Records(xenapi)
    return sorted((vm(records, ref) for ref, rec in records("VM").items()
                   if is_vm(rec) and not steps.in_flight(rec)),
                  key=lambda v: (v["name"], v["uuid"]))


def vm(records, ref):
    """A VM: sizes in MiB/GiB, NICs and disks in device order with their networks and SRs
    by name."""
    rec = records("VM")[ref]
    nics, himn = [], False
    for vif in rec["VIFs"]:
        v = records("VIF")[vif]
        net = records("network")[v["network"]]
        is_himn = net["other_config"].get(HIMN_KEY) == "true"
        himn = himn or is_himn
        nics.append({"device": int(v["device"]), "network": net["name_label"],
                     "network_uuid": net["uuid"], "mac": v["MAC"], "himn": is_himn,
                     "attached": v["currently_attached"]})
    disks, iso = [], None
    for vbd in rec["VBDs"]:
        b = records("VBD")[vbd]
        if b["type"] == "CD":
            if not b["empty"]:
                iso = records("VDI")[b["VDI"]]["name_label"]
            continue
        d = records("VDI")[b["VDI"]]
        disks.append({"device": int(b["userdevice"]), "size_gib": int(d["virtual_size"]) // GIB,
                      "sr": records("SR")[d["SR"]]["name_label"], "vdi_uuid": d["uuid"]})
    return {
        "uuid": rec["uuid"], "name": rec["name_label"], "power_state": rec["power_state"],
        "memory_mib": int(rec["memory_static_max"]) // MIB,
        "vcpus": int(rec["VCPUs_at_startup"]),
        "boot": rec["HVM_boot_params"].get("order", ""),
        "nics": sorted(nics, key=lambda n: n["device"]),
        "disks": sorted(disks, key=lambda d: d["device"]),
        "iso": iso, "himn": himn,
        "topology": rec["other_config"].get(desired.TOPOLOGY_MARK),
    }
