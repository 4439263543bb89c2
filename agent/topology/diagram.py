"""The host's networks and VMs as a diagram: Mermaid (``graph LR``) or Graphviz dot text.

``snapshot(xenapi)`` reads XAPI's records into plain data (networks with their bridge,
VLAN or physical interface, gateway and forwards; VMs with their NICs in device order);
``mermaid(snap)`` and ``dot(snap)`` turn it into text. The output is deterministic: nodes
sorted by name (then uuid), edges by VM and device, ids made from names (letters, digits
and ``_`` only, with a numeric suffix where two names would give the same id), and no
uuids or MACs in it, so the same lab on two hosts draws the same.
"""
import re

from agent.service.errors import InvalidInput
from agent.topology import model
from agent.topology.plan import MARK, current_gateway

MIB = 1024 * 1024
FORMATS = ("mermaid", "dot")


def render(xenapi, fmt="mermaid", topology=None):
    """The diagram text of the host (``topology``: a name, to draw only the VMs and
    networks marked with it and the networks those VMs use)."""
    if fmt not in FORMATS:
        raise InvalidInput("format must be one of %s, not %r" % (", ".join(FORMATS), fmt),
                           field="format")
    snap = snapshot(xenapi, topology)
    return mermaid(snap) if fmt == "mermaid" else dot(snap)


def snapshot(xenapi, topology=None):
    """{"networks": [{"id", "name", "lines"}], "vms": [{"id", "name", "lines"}],
    "edges": [(vm id, network id, label)]}, sorted."""
    x = xenapi
    networks = x.network.get_all_records()
    pifs = x.PIF.get_all_records()
    vms = {ref: rec for ref, rec in x.VM.get_all_records().items()
           if not rec["is_a_template"] and not rec.get("is_control_domain")}
    vifs = x.VIF.get_all_records()
    if topology is not None:
        vms = {r: rec for r, rec in vms.items() if rec["other_config"].get(MARK) == topology}
        used = set(vifs[v]["network"] for rec in vms.values() for v in rec["VIFs"]
                   if v in vifs)
        networks = {r: rec for r, rec in networks.items()
                    if r in used or rec["other_config"].get(MARK) == topology}
    ids = {}
    taken = set()
    net_nodes, vm_nodes, edges = [], [], []
    for ref, rec in sorted(networks.items(), key=lambda i: (i[1]["name_label"],
                                                            i[1]["uuid"])):
        ids[ref] = _id("net", rec["name_label"], taken)
        net_nodes.append({"id": ids[ref], "name": rec["name_label"],
                          "lines": _network_lines(ref, rec, pifs)})
    for ref, rec in sorted(vms.items(), key=lambda i: (i[1]["name_label"], i[1]["uuid"])):
        ids[ref] = _id("vm", rec["name_label"], taken)
        vcpus = int(rec["VCPUs_at_startup"])
        lines = [rec["name_label"], "%s, %d MiB, %d vCPU%s" % (
            rec["power_state"].lower(), int(rec["memory_static_max"]) // MIB, vcpus,
            "" if vcpus == 1 else "s")]
        if rec["other_config"].get(MARK):
            lines.append("topology %s" % rec["other_config"][MARK])
        vm_nodes.append({"id": ids[ref], "name": rec["name_label"], "lines": lines})
        nics = sorted((int(vifs[v]["device"]), vifs[v]["network"]) for v in rec["VIFs"]
                      if v in vifs)
        for device, network in nics:
            if network in ids:
                edges.append((ids[ref], ids[network], "nic %d" % device))
    return {"networks": net_nodes, "vms": vm_nodes, "edges": edges}


def _network_lines(ref, rec, pifs):
    lines = [rec["name_label"], "bridge %s" % rec["bridge"]]
    for pif in sorted(rec["PIFs"], key=lambda p: pifs.get(p, {}).get("device", "")):
        p = pifs.get(pif)
        if p is None:
            continue
        if int(p["VLAN"]) >= 0:
            lines.append("VLAN %s on %s" % (p["VLAN"], p["device"]))
        elif p["physical"]:
            lines.append("physical %s" % p["device"])
    gateway = current_gateway(ref, rec)
    if isinstance(gateway, model.GatewaySpec):
        lines.append("gateway %s%s" % (gateway.address, ", NAT" if gateway.nat else ""))
        lines.extend("forward %s:%d to %s:%d" % (f.proto, f.port, f.to_address, f.to_port)
                     for f in gateway.forwards)
    elif gateway is not None:
        lines.append("gateway %s" % gateway)  # "invalid (...)"
    if rec["other_config"].get(MARK):
        lines.append("topology %s" % rec["other_config"][MARK])
    return lines


def _id(prefix, name, taken):
    base = "%s_%s" % (prefix, re.sub(r"[^A-Za-z0-9_]", "_", name) or "_")
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = "%s_%d" % (base, n)
    taken.add(candidate)
    return candidate


def mermaid(snap):
    def label(lines):
        text = "<br/>".join(lines)
        return '"%s"' % text.replace("&", "#amp;").replace('"', "#quot;")
    out = ["graph LR"]
    out.extend('    %s([%s])' % (n["id"], label(n["lines"])) for n in snap["networks"])
    out.extend('    %s[%s]' % (v["id"], label(v["lines"])) for v in snap["vms"])
    out.extend('    %s ---|%s| %s' % (vm, label([text]), net) for vm, net, text in
               snap["edges"])
    return "\n".join(out) + "\n"


def dot(snap):
    def quote(text):
        return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"')

    def label(lines):
        return '"%s"' % "\\n".join(line.replace("\\", "\\\\").replace('"', '\\"')
                                   for line in lines)
    out = ["graph xapi_gateway {", "    rankdir=LR;",
           '    node [fontname="Helvetica"];', '    edge [fontname="Helvetica"];']
    out.extend("    %s [shape=ellipse, label=%s];" % (quote(n["id"]), label(n["lines"]))
               for n in snap["networks"])
    out.extend("    %s [shape=box, label=%s];" % (quote(v["id"]), label(v["lines"]))
               for v in snap["vms"])
    out.extend("    %s -- %s [label=%s];" % (quote(vm), quote(net), quote(text))
               for vm, net, text in snap["edges"])
    out.append("}")
    return "\n".join(out) + "\n"
