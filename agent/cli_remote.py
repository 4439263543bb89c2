"""``xgw`` commands that go through the daemon's HTTP API: networks, vms, gateways.

By default they use the local Unix socket (root, no token). ``--url https://HOST:PORT``
(or $XGW_URL) reaches a remote host, with the token from ``--token-file`` or $XGW_TOKEN
(or $XGW_TOKEN_FILE) and the server certificate checked against ``--cafile`` ($XGW_CAFILE)
or the system's CAs.

Exit codes a script can rely on: 0 done; 1 failed (XAPI refused, see the message);
2 usage or invalid input; 3 the API or XAPI is unreachable; 4 not found; 5 conflict
(name taken, in use, overlap); 6 not authorised (no token, wrong token, read-only token).
"""
import ipaddress
import json
import os
import sys

from agent.api.client import ApiError, Client
from agent.core import config as configmod
from agent.core import model
from agent.errors import GatewayInvalid

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3
EXIT_NOT_FOUND, EXIT_CONFLICT, EXIT_AUTH = 4, 5, 6
_BY_STATUS = {400: EXIT_USAGE, 401: EXIT_AUTH, 403: EXIT_AUTH, 404: EXIT_NOT_FOUND,
              409: EXIT_CONFLICT, 413: EXIT_USAGE, 415: EXIT_USAGE, 0: EXIT_UNAVAILABLE,
              503: EXIT_UNAVAILABLE}
COMMANDS = ("networks", "vms", "gateways", "links", "plan", "apply", "destroy", "diagram")


def add_arguments(parser):
    parser.add_argument("--url", default=os.environ.get("XGW_URL"),
                        help="the API of a remote host, https://HOST:PORT (default: the "
                             "local Unix socket; env XGW_URL)")
    parser.add_argument("--token-file", default=os.environ.get("XGW_TOKEN_FILE"),
                        help="file holding the bearer token for --url (env XGW_TOKEN_FILE, "
                             "or the token itself in XGW_TOKEN)")
    parser.add_argument("--cafile", default=os.environ.get("XGW_CAFILE"),
                        help="CA or self-signed certificate to check the host against "
                             "(env XGW_CAFILE), e.g. a copy of the host's "
                             "/etc/xensource/xapi-ssl.pem certificate part")


def add_commands(sub):
    json_flag = {"action": "store_true", "help": "machine-readable output"}

    nets = sub.add_parser("networks", help="list, show, create, delete networks and their "
                                           "gateways (through the API)")
    nets.add_argument("--json", **json_flag)
    ns = nets.add_subparsers(dest="action")
    ns.add_parser("list", help="all networks (the default)")
    show = ns.add_parser("show", help="one network")
    show.add_argument("key", help="name or uuid")
    create = ns.add_parser("create", help="a private network, or a VLAN one with --vlan")
    create.add_argument("name")
    create.add_argument("--description", default="")
    _gateway_flags(create, required=False)
    create.add_argument("--vlan", type=int, metavar="TAG", help="VLAN tag 0..4094")
    create.add_argument("--pif", default="eth0", help="physical interface of the VLAN")
    create.add_argument("--link", metavar="PARENT:TAG", help=_LINK_HELP)
    create.add_argument("--span", choices=("host", "pool"), default=None,
                        help="pool: a private network across the pool's hosts (VXLAN "
                             "tunnels, MTU 1450); default host")
    create.add_argument("--vni", type=int, help="span pool: the VXLAN network identifier "
                                                "(default: the lowest free one)")
    create.add_argument("--transport", metavar="PIF", help="span pool: the PIF device that "
                        "carries the tunnels (default: each host's management PIF)")
    delete = ns.add_parser("delete", help="delete a network (refused while VMs use it)")
    delete.add_argument("key")
    setgw = ns.add_parser("set-gateway", help="set or replace a network's gateway")
    setgw.add_argument("key")
    _gateway_flags(setgw, required=True)
    rmgw = ns.add_parser("remove-gateway", help="remove a network's gateway")
    rmgw.add_argument("key")
    setln = ns.add_parser("set-link", help="declare a network a VLAN of another private "
                                           "network (or change its parent or tag)")
    setln.add_argument("key")
    setln.add_argument("link", metavar="PARENT:TAG", help=_LINK_HELP)
    rmln = ns.add_parser("remove-link", help="drop a network's link")
    rmln.add_argument("key")

    vms = sub.add_parser("vms", help="list, show, create, start, shut down, delete VMs "
                                     "(through the API)")
    vms.add_argument("--json", **json_flag)
    vs = vms.add_subparsers(dest="action")
    vs.add_parser("list", help="all VMs (the default)")
    for name, text in (("show", "one VM"), ("start", "start a VM"),
                       ("attach-himn", "give a VM the host internal management network")):
        p = vs.add_parser(name, help=text)
        p.add_argument("key", help="name or uuid")
    stop = vs.add_parser("shutdown", help="shut a VM down")
    stop.add_argument("key")
    stop.add_argument("--force", action="store_true", help="power off")
    rm = vs.add_parser("delete", help="destroy a VM with its disks")
    rm.add_argument("key")
    rm.add_argument("--force", action="store_true", help="power it off first if it runs")
    make = vs.add_parser("create", help="create a VM, all or nothing")
    make.add_argument("name")
    make.add_argument("--template", help='default "Other install media"')
    make.add_argument("--memory", type=int, metavar="MIB", help="memory in MiB (default 256)")
    make.add_argument("--vcpus", type=int)
    make.add_argument("--nic", action="append", default=[], metavar="NETWORK",
                      help="a NIC on NETWORK; repeat, in device order")
    make.add_argument("--disk", action="append", default=[], metavar="GIB[@SR]",
                      help="a disk of GIB GiB (on SR, default the pool's); repeat")
    make.add_argument("--iso", help="ISO in the CD drive")
    make.add_argument("--boot", help="boot order: c disk, d CD, n network, e.g. ncd")
    make.add_argument("--himn", action="store_true", help="add the host internal "
                                                          "management network (device 9)")
    make.add_argument("--start", action="store_true")
    make.add_argument("--host", help="the pool host (uuid or name) it starts on, also its "
                                     "affinity")
    make.add_argument("--sr-check", choices=("warn", "refuse", "off"),
                      help="a disk on an SR that is not ext: warn (default), refuse, off")

    gws = sub.add_parser("gateways", help="live state of the gateways (through the API)")
    gws.add_argument("--json", **json_flag)
    lns = sub.add_parser("links", help="live state of the VLAN links between networks "
                                       "(through the API)")
    lns.add_argument("--json", **json_flag)

    for name, text in (("plan", "show what applying a topology file would change"),
                       ("apply", "make the host match a topology file, step by step"),
                       ("destroy", "remove what a topology file made, and nothing else")):
        p = sub.add_parser(name, help=text)
        p.add_argument("file", help="topology file, YAML or JSON (see examples/)")
        p.add_argument("--json", **json_flag)
        if name != "destroy":
            p.add_argument("--prune", action="store_true", help="also delete what the "
                           "topology made but the file no longer has")
        if name == "apply":
            p.add_argument("--sr-check", choices=("warn", "refuse", "off"), default="warn",
                           help="disks on an SR that is not ext: warn (default), refuse, off")
    dia = sub.add_parser("diagram", help="the host's networks and VMs as Mermaid or "
                                         "Graphviz text")
    dia.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    dia.add_argument("--topology", metavar="NAME", help="only what this topology made")


_LINK_HELP = ("this network is VLAN TAG (1-4094) of the private network PARENT (name or "
              "uuid), e.g. private:102")


def _gateway_flags(parser, required):
    parser.add_argument("--gateway", required=required, metavar="CIDR",
                        help="gateway address with prefix, e.g. 172.16.0.1/24")
    parser.add_argument("--no-nat", action="store_true", help="route only, no masquerade")
    parser.add_argument("--public", action="store_true",
                        help="allow a subnet outside the private (RFC 1918) and shared "
                             "(RFC 6598) ranges")
    parser.add_argument("--forward", action="append", default=[],
                        metavar="PROTO:PORT=ADDRESS[:PORT]",
                        help="publish a VM's port on the host, e.g. tcp:8080=172.16.0.3:80")
    parser.add_argument("--inbound", action="append", default=[], metavar="CIDR",
                        help="let this outside network open connections into the subnet, "
                             "routed and not NATed (repeat, or separate with commas; 'any' "
                             "for the whole Internet), e.g. 192.0.2.0/24")
    parser.add_argument("--host", metavar="HOST",
                        help="in a pool: pin the gateway to this host (uuid or name_label) "
                             "while it is live and enabled")


def client(args, config):
    token = os.environ.get("XGW_TOKEN")
    if args.token_file:
        try:
            with open(args.token_file) as f:
                words = f.read().split()
        except (IOError, OSError) as exc:
            raise ApiError("cannot read the token file %s: %s" % (args.token_file, exc),
                           status=400)
        # a bare token, or a line of the daemon's own token file: "<scope> <token> ..."
        token = words[1] if len(words) > 1 and words[0] in ("read", "admin") else \
            (words[0] if words else None)
    return Client(socket_path=configmod.api_socket(config), url=args.url, token=token,
                  cafile=args.cafile)


def run(args, config):
    try:
        api = client(args, config)
        return _COMMANDS[args.command](api, args)
    except ApiError as exc:
        print("xgw: %s" % _explain(exc, args), file=sys.stderr)
        if exc.status == 502:
            return EXIT_FAILED
        return _BY_STATUS.get(exc.status, EXIT_FAILED)


def _explain(exc, args):
    message = exc.message
    if exc.details.get("field") and exc.details["field"] not in message:
        message += " (field %s)" % exc.details["field"]
    if exc.status == 401:
        message += "; pass --token-file or set XGW_TOKEN"
    if exc.status == 502 and exc.details.get("step"):
        message += "; nothing was left behind"
    return message


# ---- commands ------------------------------------------------------------------------------
def _networks(api, args):
    action = args.action or "list"
    if action == "list":
        return _out(args, api.request("GET", "/v1/networks"), _network_table)
    if action == "show":
        return _out(args, api.request("GET", "/v1/networks/%s" % _q(args.key)), _network_card)
    if action == "create":
        body = {"name": args.name, "description": args.description}
        if args.gateway:
            body["gateway"] = _gateway_body(args)
        if args.vlan is not None:
            body["vlan"] = {"tag": args.vlan, "pif": args.pif}
        if args.link is not None:
            body["link"] = _link(args.link, "--link")
        for key in ("span", "vni", "transport"):
            if getattr(args, key) is not None:
                body[key] = getattr(args, key)
        return _out(args, api.request("POST", "/v1/networks", body), _network_card)
    if action == "delete":
        api.request("DELETE", "/v1/networks/%s" % _q(args.key))
        return _out(args, {"deleted": args.key},
                    lambda r: print("network %s deleted" % r["deleted"]))
    if action == "set-gateway":
        return _out(args, api.request("PUT", "/v1/networks/%s/gateway" % _q(args.key),
                                      _gateway_body(args)), _network_card)
    if action == "remove-gateway":
        return _out(args, api.request("DELETE", "/v1/networks/%s/gateway" % _q(args.key)),
                    _network_card)
    if action == "set-link":
        return _out(args, api.request("PUT", "/v1/networks/%s/link" % _q(args.key),
                                      _link(args.link, "PARENT:TAG")), _network_card)
    if action == "remove-link":
        return _out(args, api.request("DELETE", "/v1/networks/%s/link" % _q(args.key)),
                    _network_card)
    return EXIT_USAGE


def _vms(api, args):
    action = args.action or "list"
    key = _q(getattr(args, "key", "") or "")
    if action == "list":
        return _out(args, api.request("GET", "/v1/vms"), _vm_table)
    if action == "show":
        return _out(args, api.request("GET", "/v1/vms/%s" % key), _vm_card)
    if action == "start":
        return _out(args, api.request("POST", "/v1/vms/%s/start" % key), _vm_card)
    if action == "shutdown":
        return _out(args, api.request("POST", "/v1/vms/%s/shutdown" % key,
                                      {"force": args.force}), _vm_card)
    if action == "attach-himn":
        return _out(args, api.request("POST", "/v1/vms/%s/himn" % key), _vm_card)
    if action == "delete":
        result = api.request("DELETE", "/v1/vms/%s%s" % (key, "?force=true" if args.force
                                                          else ""))
        return _out(args, result, lambda r: print(
            "VM %s destroyed; disks destroyed: %d%s" % (
                args.key, len(r["disks_destroyed"]), "; kept (used elsewhere): %s"
                % ", ".join(r["disks_kept"]) if r["disks_kept"] else "")))
    if action == "create":
        body = {"name": args.name, "nics": args.nic, "disks": [_disk(d) for d in args.disk]}
        for flag, field in (("template", "template"), ("memory", "memory_mib"),
                            ("vcpus", "vcpus"), ("iso", "iso"), ("boot", "boot"),
                            ("sr_check", "sr_check"), ("host", "host")):
            if getattr(args, flag) is not None:
                body[field] = getattr(args, flag)
        body.update(himn=args.himn, start=args.start)
        if not args.json:
            print("creating VM %s" % args.name, file=sys.stderr)
        result = api.stream("POST", "/v1/vms", body, progress=None if args.json else (
            lambda step: print("  %s" % step, file=sys.stderr)))
        for warning in result.get("warnings", []):
            print("xgw: warning: %s" % warning, file=sys.stderr)
        return _out(args, result, _vm_card)
    return EXIT_USAGE


def _gateways(api, args):
    return _out(args, api.request("GET", "/v1/gateways"), gateway_table)


def _links(api, args):
    return _out(args, api.request("GET", "/v1/links"), link_table)


def _read_topology(path):
    """The file's document, checked locally first (the same model the API uses), so a
    typo is reported with its path before anything is sent."""
    import io
    from agent.errors import AgentError
    from agent.topology import model
    try:
        with io.open(path, encoding="utf-8") as f:
            text = f.read()
        fmt = "json" if path.endswith(".json") else "yaml" if path.endswith(
            (".yaml", ".yml")) else None
        document = model.loads(text, source=path, fmt=fmt)
        model.parse(document)
    except (IOError, OSError, UnicodeDecodeError) as exc:
        raise ApiError("cannot read the topology file %s: %s" % (path, exc), status=400)
    except AgentError as exc:
        raise ApiError("%s: %s" % (path, exc.message), status=400, **exc.details)
    return document


def _query(args, *names):
    parts = ["%s=%s" % (n, _q(str(getattr(args, n)).lower() if isinstance(
        getattr(args, n), bool) else getattr(args, n))) for n in names
        if getattr(args, n, None) not in (None, False)]
    return "?" + "&".join(parts) if parts else ""


def _plan(api, args):
    document = _read_topology(args.file)
    result = api.request("POST", "/v1/topology/plan" + _query(args, "prune"), document)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print("topology %s: %s" % (result["topology"], result["summary"]))
        for action in result["actions"]:
            print("  %s" % action["detail"])
    if any(a["kind"] == "conflict" for a in result["actions"]):
        return EXIT_CONFLICT
    return EXIT_OK


def _apply_or_destroy(api, args):
    document = _read_topology(args.file)
    path = "/v1/topology/%s%s" % (args.command, _query(args, "prune", "sr_check")
                                  if args.command == "apply" else "")
    result = api.stream("POST", path, document, progress=None if args.json else (
        lambda step: print(step, file=sys.stderr)))
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print("topology %s: %d change%s (%s)" % (
            result["topology"], result["changed"], "" if result["changed"] == 1 else "s",
            result.get("summary", "")))
    return EXIT_OK


def _diagram(api, args):
    print(api.request("GET", "/v1/diagram" + _query(args, "format", "topology")), end="")
    return EXIT_OK


_COMMANDS = {"networks": _networks, "vms": _vms, "gateways": _gateways, "links": _links,
             "plan": _plan,
             "apply": _apply_or_destroy, "destroy": _apply_or_destroy,
             "diagram": _diagram}


# ---- input ---------------------------------------------------------------------------------
def _gateway_body(args):
    body = {"address": args.gateway, "nat": not args.no_nat}
    if args.public:
        body["public"] = True
    if args.forward:
        body["forwards"] = [_forward(text) for text in args.forward]
    if args.inbound:
        # the daemon's API validates each entry (agent.core.model.parse_inbound)
        body["inbound"] = [e.strip() for text in args.inbound for e in text.split(",")]
    if args.host is not None:  # checked by the daemon's API (agent.core.model.parse_host)
        body["host"] = args.host
    return body


def _link(text, what):
    """PARENT:TAG, the text form of xe's value (agent.core.model.parse_link), as the API's
    {"parent", "tag"}; PARENT may be a name here (the API resolves it)."""
    try:
        parent, tag = model.parse_link(text, what)
    except GatewayInvalid as exc:
        raise ApiError(str(exc), status=400)
    return {"parent": parent, "tag": tag}


def _forward(text):
    """A --forward in the config file's and xe's text form, parsed by agent.core.model."""
    try:
        forwards = model.parse_forwards(text, "--forward")
    except GatewayInvalid as exc:
        raise ApiError(str(exc), status=400)
    if len(forwards) != 1:
        raise ApiError("--forward %r: give one forward per --forward" % text, status=400)
    return forwards[0].as_dict()


def _disk(text):
    size, _, sr = text.partition("@")
    if not size.isdigit():
        raise ApiError("--disk %s: write GIB or GIB@SR, e.g. 50 or 50@Local storage" % text,
                       status=400)
    disk = {"size_gib": int(size)}
    if sr:
        disk["sr"] = sr
    return disk


def _q(text):
    from urllib.parse import quote
    return quote(text, safe="")


# ---- output --------------------------------------------------------------------------------
def _out(args, data, human):
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        human(data)
    return EXIT_OK


def table(rows):
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


def _gw_text(gw):
    if not gw:
        return "-"
    text = gw["address"] + (" NAT" if gw["nat"] else "")
    for f in gw.get("forwards", []):
        text += " %s:%d->%s" % (f["proto"], f["port"], f["to"])
    if gw.get("inbound"):
        text += " in:" + ",".join(gw["inbound"])
    if gw.get("host"):
        text += " host:" + gw["host"]
    return text


def _link_text(link, reason=False):
    if not link:
        return "-"
    text = "VLAN %s of %s (%s)" % ("?" if link["tag"] is None else link["tag"],
                                  link["parent_name"] or link["parent"] or "?", link["state"])
    return text + (": %s" % link["reason"] if reason and link.get("reason") else "")


def _network_table(nets):
    rows = [("NAME", "BRIDGE", "VLAN", "SPAN", "GATEWAY", "LINK", "VMS")]
    for n in nets:
        rows.append((n["name"], n["bridge"], "-" if n["vlan"] is None else n["vlan"],
                     _span_text(n), _gw_text(n["gateway"]), _link_text(n.get("link")),
                     ", ".join(n["vms"]) or "-"))
    table(rows)


def _span_text(n):
    """``host``, or ``pool vni 5 center host-a`` (the state when not ready)."""
    t = n.get("tunnels")
    if n.get("span") != "pool" or t is None:
        return n.get("span") or "host"
    text = "pool vni %s" % ("-" if t["vni"] is None else t["vni"])
    if t["center_name"]:
        text += " center %s" % t["center_name"]
    return text + ("" if t["state"] == "ready" else " (%s)" % t["state"])


def _network_card(n):
    rows = [("network", n["name"]), ("uuid", n["uuid"]), ("bridge", n["bridge"]),
            ("vlan", "-" if n["vlan"] is None else n["vlan"]), ("span", _span_text(n)),
            ("gateway", _gw_text(n["gateway"])),
            ("link", _link_text(n.get("link"), reason=True)),
            ("vms", ", ".join(n["vms"]) or "-")]
    t = n.get("tunnels")
    if t is not None:
        rows.append(("tunnels", t["reason"]))
        rows += [("ports on %s" % p["host_name"], p["ports"]) for p in t["ports"]]
        rows += [("left out: %s" % p["host_name"], p["problem"]) for p in t["problems"]]
        rows += [("warning: %s" % w["host_name"], w["warning"]) for w in t["warnings"]]
    table(rows)


def _vm_table(vms):
    rows = [("NAME", "STATE", "MEMORY", "VCPUS", "NICS", "DISKS")]
    for v in vms:
        rows.append((v["name"], v["power_state"], "%d MiB" % v["memory_mib"], v["vcpus"],
                     ", ".join("%d:%s" % (n["device"], n["network"]) for n in v["nics"]) or "-",
                     ", ".join("%d GiB" % d["size_gib"] for d in v["disks"]) or "-"))
    table(rows)


def _vm_card(v):
    table([("vm", v["name"]), ("uuid", v["uuid"]), ("state", v["power_state"]),
           ("memory", "%d MiB" % v["memory_mib"]), ("vcpus", v["vcpus"]),
           ("boot", v["boot"]), ("iso", v["iso"] or "-")] +
          [("nic %d" % n["device"], "%s %s" % (n["network"], n["mac"])) for n in v["nics"]] +
          [("disk %d" % d["device"], "%d GiB on %s" % (d["size_gib"], d["sr"]))
           for d in v["disks"]])


def link_table(links):
    """The VLAN links and their state (``xgw status``, ``xgw links``)."""
    rows = [("NETWORK", "BRIDGE", "VLAN OF", "TAG", "STATE", "DETAIL")]
    for ln in links:
        rows.append((ln["name"] or ln["network"], ln["bridge"] or "-",
                     ln["parent_name"] or ln["parent"] or "-",
                     "-" if ln["tag"] is None else ln["tag"], ln["state"],
                     ln.get("reason") or ""))
    table(rows)


def tunnel_table(networks):
    """The spanning networks of ``xgw status``: VNI, center, state, the ports each host
    should have (``name:count``; this host's count and what the OVS writer made of them),
    then the hosts left out."""
    rows = [("NETWORK", "BRIDGE", "VNI", "CENTER", "STATE", "PORTS")]
    for n in networks:
        here = len(n.get("here") or [])
        rows.append((n["name"], n["bridge"], "-" if n["vni"] is None else n["vni"],
                     n["center_name"] or "-", n["state"],
                     " ".join("%s:%d" % (p["host_name"], p["ports"]) for p in n["ports"])
                     + " (here %d%s)" % (here, " " + n["here_state"]
                                         if n.get("here_state") else "")))
    table(rows)
    for n in networks:
        if n["state"] == "invalid":
            print("%s: %s" % (n["name"], n["reason"]))
        if n.get("here_reason"):
            print("%s: this host's ports %s: %s" % (n["name"], n["here_state"],
                                                    n["here_reason"]))
        for p in n["problems"]:
            print("%s: host %s left out: %s" % (n["name"], p["host_name"], p["problem"]))
        for w in n["warnings"]:
            print("%s: host %s: %s" % (n["name"], w["host_name"], w["warning"]))


def gateway_table(gateways):
    rows = [("GATEWAY", "BRIDGE", "ADDRESS", "NAT", "STATE", "DETAIL")]
    for g in gateways:
        rows.append((g["name"], g["bridge"], g.get("address") or "-",
                     "yes" if g.get("nat") else "no", g["state"],
                     g.get("error") or g.get("reason") or (
                         "served here (%s)" % g["placement"] if g.get("placement") else "")))
    table(rows)
    for g in gateways:
        network = g.get("address") and str(ipaddress.IPv4Interface(g["address"]).network)
        for route in g.get("routes") or []:
            print()
            if not route["via"]:
                print("%s: no route from this host to inbound source %s; add one on the "
                      "host first" % (g["name"], route["source"]))
                continue
            print("To reach %s (%s) from %s through this host (%s), run there:"
                  % (g["name"], network, route["source"], route["via"]))
            for system, label in (("linux", "Linux"), ("macos", "macOS"),
                                  ("windows", "Windows")):
                print("  %-8s %s" % (label + ":", route["commands"][system]))
