"""One table of gateway, forward, inbound-source and host-pin cases, run through every entry point a user has:

- the config file (agent.core.config, what --check-config and the daemon read),
- ``xe`` text: other_config values written through the real SDK into the simulator, read
  back by the daemon's XAPI source and resolved by its planner (what ``xgw status`` says),
- the HTTP API (``POST /v1/networks`` on the served API, in front of the simulator),
- a topology file (YAML text, agent.topology.model).

They differ in syntax only: each case is accepted by all four (with the same canonical
forwards) or refused by all four with the same reason. A case has one or two gateways,
named a and b; where two clash, b is the one refused.

A second table does the same for VLAN links between networks (xe, the API, a topology),
and a third for networks that span the pool (span, VNI) through xe, the API and a
topology file applied, on a simulated pool of three hosts.
"""
import json

import pytest

from agent.api.client import Client
from agent.core import config, desired, model, planner
from agent.daemon.sources import XapiSource
from agent.errors import ConfigError
from agent.service import steps
from agent.service.errors import Conflict, InvalidInput
from agent.topology import model as topology
from tests.unit.api.conftest import Http, start, tls_files  # noqa: F401 (a fixture)

OK = None


def gw(address="172.16.1.1/24", forwards=(), public=None, inbound=(), host=None):
    """A gateway's values: forwards are (proto, port, to) with port an int, or None for
    'missing'; inbound a list of source texts; host the pin's text (None: not pinned)."""
    return {"address": address, "forwards": list(forwards), "public": public,
            "inbound": list(inbound), "host": host}


def _accepted(forwards, inbound, host=""):
    """What an entry point accepted for one gateway, in one comparable form: the canonical
    forwards, then ``inbound=<canonical sources>`` and ``host=<pin>`` when there are some.
    Whether a pin names a host of the pool is placement's question (test_placement): here
    only its text is checked, the same way everywhere."""
    return [str(f) for f in forwards] + (
        ["inbound=" + ",".join(inbound)] if inbound else []) + (
        ["host=" + host] if host else [])


WEB = ("tcp", 8080, "172.16.1.10:80")
B_NET = "172.16.2.1/24"

# id, gateways, the reason every entry point gives (OK: accepted), the canonical forwards
# of every gateway when accepted.
CASES = [
    ("plain", [gw()], OK, [[]]),
    ("forward", [gw(forwards=[WEB])], OK, [["tcp:8080=172.16.1.10:80"]]),
    ("protocol-upper-case", [gw(forwards=[("TCP", 8080, "172.16.1.10:80")])], OK,
     [["tcp:8080=172.16.1.10:80"]]),
    ("protocol-mixed-case", [gw(forwards=[("Udp", 5353, "172.16.1.11:53")])], OK,
     [["udp:5353=172.16.1.11:53"]]),
    ("destination-port-left-out", [gw(forwards=[("tcp", 8080, "172.16.1.10")])], OK,
     [["tcp:8080=172.16.1.10:8080"]]),
    ("two-forwards-sorted", [gw(forwards=[("udp", 53, "172.16.1.11"), WEB])], OK,
     [["tcp:8080=172.16.1.10:80", "udp:53=172.16.1.11:53"]]),
    ("same-port-other-protocol", [gw(forwards=[WEB, ("udp", 8080, "172.16.1.10:80")])], OK,
     [["tcp:8080=172.16.1.10:80", "udp:8080=172.16.1.10:80"]]),
    ("udp-22-is-not-ssh", [gw(forwards=[("udp", 22, "172.16.1.10")])], OK,
     [["udp:22=172.16.1.10:22"]]),
    ("shared-range-rfc6598", [gw("100.64.0.1/24")], OK, [[]]),
    ("public-with-opt-in", [gw("8.8.8.1/24", public=True)], OK, [[]]),
    ("two-gateways-apart", [gw(forwards=[WEB]), gw(B_NET, [("tcp", 8081, "172.16.2.10")])],
     OK, [["tcp:8080=172.16.1.10:80"], ["tcp:8081=172.16.2.10:8081"]]),
    ("protocol-icmp", [gw(forwards=[("icmp", 8080, "172.16.1.10")])],
     "'icmp' is not a protocol a forward can use: use tcp or udp", None),
    ("port-zero", [gw(forwards=[("tcp", 0, "172.16.1.10:80")])],
     "0 is out of range: use a whole number from 1 to 65535", None),
    ("port-65536", [gw(forwards=[("tcp", 65536, "172.16.1.10:80")])],
     "65536 is out of range: use a whole number from 1 to 65535", None),
    ("destination-port-zero", [gw(forwards=[("tcp", 8080, "172.16.1.10:0")])],
     "0 is out of range: use a whole number from 1 to 65535", None),
    ("destination-port-65536", [gw(forwards=[("tcp", 8080, "172.16.1.10:65536")])],
     "65536 is out of range: use a whole number from 1 to 65535", None),
    ("destination-not-an-address", [gw(forwards=[("tcp", 8080, "web:80")])],
     "is not an IPv4 ADDRESS:PORT (like 172.16.1.10:80)", None),
    ("reserved-ssh", [gw(forwards=[("tcp", 22, "172.16.1.10")])],
     "tcp port 22 is Dom0's own SSH port; a forward there would cut the host off from it",
     None),
    ("reserved-xapi-upper-case", [gw(forwards=[("TCP", 443, "172.16.1.10")])],
     "tcp port 443 is Dom0's own XAPI (HTTPS) port", None),
    ("reserved-xapi-http", [gw(forwards=[("tcp", 80, "172.16.1.10")])],
     "tcp port 80 is Dom0's own XAPI (HTTP) port", None),
    ("destination-outside-subnet", [gw(forwards=[("tcp", 8080, "10.0.0.3:80")])],
     "tcp:8080=10.0.0.3:80 forwards to 10.0.0.3, which is outside the gateway's subnet "
     "172.16.1.0/24; forward to a host of 172.16.1.0/24", None),
    ("destination-is-the-gateway", [gw(forwards=[("tcp", 8080, "172.16.1.1:80")])],
     "forwards to 172.16.1.1, which is the gateway's own address", None),
    ("destination-is-the-network", [gw(forwards=[("tcp", 8080, "172.16.1.0:80")])],
     "forwards to 172.16.1.0, which is the network address of 172.16.1.0/24", None),
    ("destination-is-broadcast", [gw(forwards=[("tcp", 8080, "172.16.1.255:80")])],
     "forwards to 172.16.1.255, which is the broadcast address of 172.16.1.0/24", None),
    ("port-forwarded-twice", [gw(forwards=[WEB, ("TCP", 8080, "172.16.1.11:80")])],
     "tcp port 8080 is forwarded twice (to 172.16.1.10:80 and to 172.16.1.11:80); "
     "forward each port once", None),
    ("port-forwarded-by-two-gateways",
     [gw(forwards=[WEB]), gw(B_NET, [("tcp", 8080, "172.16.2.10:80")])],
     "tcp port 8080 is already forwarded by gateway a (to 172.16.1.10:80)", None),
    ("overlapping-subnets", [gw(), gw("172.16.0.1/16")],
     "subnet 172.16.0.0/16 overlaps gateway a (172.16.1.0/24)", None),
    ("same-subnet", [gw(), gw("172.16.1.2/24")],
     "subnet 172.16.1.0/24 overlaps gateway a (172.16.1.0/24)", None),
    ("address-is-the-network", [gw("172.16.1.0/24")],
     "is the network address of 172.16.1.0/24 (host bits all zero)", None),
    ("address-is-broadcast", [gw("172.16.1.255/24")],
     "is the broadcast address of 172.16.1.0/24", None),
    ("prefix-31", [gw("172.16.1.1/31")],
     "has prefix /31; a gateway subnet must be between /8 and /30", None),
    ("prefix-7", [gw("10.1.1.1/7")],
     "has prefix /7; a gateway subnet must be between /8 and /30", None),
    ("prefix-33", [gw("172.16.1.1/33")], "is not an IPv4 address with prefix", None),
    ("no-prefix", [gw("172.16.1.1")], "needs a prefix length, for example 172.16.1.1/24",
     None),
    ("loopback", [gw("127.0.0.1/8")], "is a loopback address", None),
    ("public-without-opt-in", [gw("8.8.8.1/24")],
     "subnet 8.8.8.0/24 is outside the private ranges (RFC 1918: 10.0.0.0/8, "
     "172.16.0.0/12, 192.168.0.0/16) and the shared range (RFC 6598: 100.64.0.0/10), so it "
     "may be routed on the internet; mark the gateway public to use it anyway", None),
    ("public-explicitly-no", [gw("198.51.100.1/24", public=False)],
     "subnet 198.51.100.0/24 is outside the private ranges", None),
    ("public-range-straddled", [gw("172.0.0.1/8")],
     "subnet 172.0.0.0/8 is outside the private ranges", None),
    ("inbound", [gw(inbound=["198.51.100.7", "192.0.2.0/24"])], OK,
     [["inbound=192.0.2.0/24,198.51.100.7/32"]]),
    ("inbound-any", [gw(inbound=["ANY"])], OK, [["inbound=any"]]),
    ("inbound-with-forwards", [gw(forwards=[WEB], inbound=["192.0.2.0/24"])], OK,
     [["tcp:8080=172.16.1.10:80", "inbound=192.0.2.0/24"]]),
    ("inbound-host-bits", [gw(inbound=["192.0.2.1/24"])],
     "entry 1 '192.0.2.1/24' has host bits set; the network is 192.0.2.0/24", None),
    ("inbound-everything-without-any", [gw(inbound=["0.0.0.0/0"])],
     "entry 1 '0.0.0.0/0' lets the whole Internet in; write 'any' if that is really what "
     "you mean", None),
    ("inbound-overlaps-own-subnet", [gw(inbound=["172.16.0.0/16"])],
     "inbound: 172.16.0.0/16 overlaps the gateway's own subnet 172.16.1.0/24", None),
    ("inbound-listed-twice", [gw(inbound=["192.0.2.0/24", "192.0.2.128/25"])],
     "inbound: 192.0.2.128/25 is inside 192.0.2.0/24; list each source once", None),
    ("inbound-not-a-network", [gw(inbound=["lab.example"])],
     "entry 1 'lab.example' is not an IPv4 network such as 192.0.2.0/24", None),
    ("host-pin-by-name", [gw(host="xcp-host-2")], OK, [["host=xcp-host-2"]]),
    ("host-pin-with-space-trimmed", [gw(host=" host two ")], OK, [["host=host two"]]),
    ("host-pin-by-uuid", [gw(forwards=[WEB], host="0b6e4c3a-5f7d-4c1e-9a1b-2d3e4f5a6b7c")],
     OK, [["tcp:8080=172.16.1.10:80", "host=0b6e4c3a-5f7d-4c1e-9a1b-2d3e4f5a6b7c"]]),
    ("host-pin-empty-is-no-pin", [gw(host="")], OK, [[]]),
    ("host-pin-control-character", [gw(host="host\ttwo")],
     "is not a host: give a host's uuid or name_label", None),
    ("host-pin-too-long", [gw(host="h" * 256)],
     "is not a host: give a host's uuid or name_label (at most 255 characters", None),
]
NAMES = ("a", "b")


# ---- the four entry points: (True, [canonical forwards per gateway]) or (False, message) ---
def _text_forwards(forwards):
    return ",".join("%s:%s=%s" % f for f in forwards)


def through_config(gateways, _env):
    text = ""
    for i, g in enumerate(gateways):
        text += "[gateway:%s]\nbridge = xapi%d\naddress = %s\n" % (NAMES[i], i + 1,
                                                                   g["address"])
        if g["forwards"]:
            text += "forwards = %s\n" % _text_forwards(g["forwards"])
        if g["public"] is not None:
            text += "public = %s\n" % ("yes" if g["public"] else "no")
        if g["inbound"]:
            text += "inbound = %s\n" % ",".join(g["inbound"])
        if g["host"] is not None:
            text += "host = %s\n" % g["host"]
    try:
        parsed = config.parse(text, "agent.conf")
    except ConfigError as exc:
        return False, exc.message
    return True, [_accepted(parsed.gateways[n].forwards, _inbound(parsed.gateways[n]),
                            parsed.gateways[n].host) for n in NAMES[:len(gateways)]]


def _inbound(gateway):
    return [model.format_inbound((n,)) for n in gateway.inbound]


def through_xe(gateways, env):
    """Values as ``xe network-param-set other-config:...`` stores them (text), read the way
    the daemon does: all network records -> XapiSource -> the planner's resolve."""
    x = env["xenapi"]
    made = []
    try:
        return _xe(x, gateways, made)
    finally:  # the API's turn comes next, on the same simulator
        for ref in made:
            x.network.destroy(ref)


def _xe(x, gateways, made):
    for i, g in enumerate(gateways):
        other = {desired.ADDRESS: g["address"]}
        if g["forwards"]:
            other[desired.FORWARDS] = _text_forwards(g["forwards"])
        if g["public"] is not None:
            other[desired.PUBLIC] = "true" if g["public"] else "false"
        if g["inbound"]:
            other[desired.INBOUND] = ",".join(g["inbound"])
        if g["host"] is not None:
            other[desired.HOST] = g["host"]
        made.append(x.network.create({"name_label": NAMES[i], "name_description": "",
                                      "other_config": other}))
    source = XapiSource()
    source.update(x.network.get_all_records())
    if source.invalid():
        return False, " ".join(i.reason for i in source.invalid().values())
    observed = planner.Observed(links={}, addresses={}, routes=set(), tables={},
                                ip_forward=True)
    accepted, status = planner.resolve(source.gateways(), observed, {})
    if status:
        return False, " ".join(s.reason for s in status.values())
    by_name = {g.name: g for g in accepted}
    return True, [_accepted(by_name[n].forwards, _inbound(by_name[n]), by_name[n].host)
                  for n in NAMES[:len(gateways)]]


def through_api(gateways, env):
    api = start(env["served"], env["tls"])
    try:
        http = Http(Client(socket_path=api.socket))
        result = []
        for i, g in enumerate(gateways):
            body = {"address": g["address"],
                    "forwards": [{"proto": p, "port": port, "to": to}
                                 for p, port, to in g["forwards"]]}
            if g["public"] is not None:
                body["public"] = g["public"]
            if g["inbound"]:
                body["inbound"] = g["inbound"]
            if g["host"] is not None:
                body["host"] = g["host"]
            status, data = http("POST", "/v1/networks", {"name": NAMES[i], "gateway": body})
            if status != 201:
                assert status in (400, 409), (status, data)
                return False, data["error"]["message"]
            result.append(_accepted(["%s:%d=%s" % (f["proto"], f["port"], f["to"])
                                     for f in data["gateway"]["forwards"]],
                                    data["gateway"]["inbound"], data["gateway"]["host"]))
        return True, result
    finally:
        api.close()


def through_topology(gateways, _env):
    lines = ["name: lab", "networks:"]
    for i, g in enumerate(gateways):
        lines += ["  - name: %s" % NAMES[i], "    gateway:", "      address: %s" % g["address"]]
        if g["public"] is not None:
            lines.append("      public: %s" % ("true" if g["public"] else "false"))
        if g["inbound"]:
            lines.append("      inbound: [%s]" % ", ".join(g["inbound"]))
        if g["host"] is not None:
            lines.append("      host: %s" % json.dumps(g["host"]))
        if g["forwards"]:
            lines.append("      forwards:")
            lines += ["        - {proto: %s, port: %d, to: %s}" % (p, port, json.dumps(to))
                      for p, port, to in g["forwards"]]
    try:
        parsed = topology.parse(topology.loads("\n".join(lines) + "\n", fmt="yaml"))
    except InvalidInput as exc:
        return False, exc.message
    return True, [_accepted(n.gateway.forwards, [model.format_inbound((i,))
                                                 for i in n.gateway.inbound], n.gateway.host)
                  for n in parsed.networks]


ENTRY_POINTS = [("config", through_config), ("xe", through_xe), ("api", through_api),
                ("topology", through_topology)]


@pytest.mark.parametrize("gateways,reason,forwards", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_every_entry_point_accepts_and_refuses_the_same(served, xenapi, tls_files, gateways,
                                                        reason, forwards):
    env = {"served": served, "xenapi": xenapi, "tls": tls_files}
    results = {name: run(gateways, env) for name, run in ENTRY_POINTS}
    if reason is OK:
        assert results == {name: (True, forwards) for name, _run in ENTRY_POINTS}
    else:
        refused = {name: ok is False and reason in said for name, (ok, said) in results.items()}
        assert all(refused.values()), "expected every entry point to refuse with %r, got %s" \
            % (reason, json.dumps(results, indent=1))


def test_the_second_of_two_clashing_gateways_is_the_one_named():
    """Where two gateways clash, each entry point names b (the later) as the refused one."""
    ok, said = through_config([gw(), gw("172.16.0.1/16")], None)
    assert not ok and "[gateway:b]" in said
    ok, said = through_topology([gw(), gw("172.16.0.1/16")], None)
    assert not ok and said.startswith("networks[1].gateway.address: ")


# ---- links: a network declared a VLAN of another, through xe, the API and a topology ------
# (the config file names bridges, not networks: it has no links). A case lists networks in
# order, each (name, (parent, tag) or None); the parent is a network of the case, one of
# the host's (WIRED has a PIF), or a name that is none. Accepted: "child=VLAN TAG of PARENT"
# for every link; refused: the reason (a list: all its parts) every entry point gives.
WIRED = "Pool-wide network associated with eth0"
P = ("private", None)
LINK_CASES = [
    ("link", [P, ("br100", ("private", 102))], OK, ["br100=VLAN 102 of private"]),
    ("two-links-two-tags", [P, ("br100", ("private", 102)), ("storage", ("private", 103))],
     OK, ["br100=VLAN 102 of private", "storage=VLAN 103 of private"]),
    ("two-parents-one-tag", [P, ("lab", None), ("br100", ("private", 102)),
                             ("storage", ("lab", 102))],
     OK, ["br100=VLAN 102 of private", "storage=VLAN 102 of lab"]),
    ("tag-zero", [P, ("br100", ("private", 0))],
     ["tag 0 is not a VLAN tag: use a whole number from 1 to 4094"], None),
    ("tag-4095", [P, ("br100", ("private", 4095))], ["tag 4095 is not a VLAN tag"], None),
    ("tag-5000", [P, ("br100", ("private", 5000))], ["tag 5000 is not a VLAN tag"], None),
    ("unknown-parent", [("br100", ("nowhere", 102))],
     ["parent network nowhere does not exist"], None),
    ("itself", [("br100", ("br100", 102))],
     ["a network cannot be a VLAN of itself; name another network"], None),
    ("parent-with-a-pif", [("br100", (WIRED, 102))],
     ["its parent %s has a PIF (a physical or VLAN network)" % WIRED], None),
    ("tag-taken", [P, ("br100", ("private", 102)), ("storage", ("private", 102))],
     ["tag 102 of network private (", ") is the link of network ", "; choose another tag"],
     None),
    # (a longer cycle cannot be built one request at a time: its second link is already
    # a chain; tests/unit/core/test_links.py has one through the records)
    ("cycle", [("a", None), ("b", ("a", 5)), ("a", ("b", 6))],
     ["the links form a cycle (", " -> "], None),
    ("chain", [P, ("a", None), ("b", ("a", 5)), ("a", ("private", 6))],
     ["is itself declared a VLAN of another network; links do not chain"], None),
]


def _link_networks(case):
    """The case's networks in first-seen order, and the last link given to each."""
    order, wanted = [], {}
    for name, link in case:
        if name not in wanted:
            order.append(name)
        wanted[name] = link if link is not None else wanted.get(name)
    return order, wanted


def links_through_xe(case, env):
    """``xe network-param-set other-config:xapi-gateway.link=<parent uuid>:<tag>`` on
    each network, read back by the daemon's XAPI source."""
    x = env["xenapi"]
    order, wanted = _link_networks(case)
    made = {name: x.network.create({"name_label": name, "name_description": "",
                                    "other_config": {}}) for name in order}
    try:
        uuid = {rec["name_label"]: rec["uuid"] for rec in x.network.get_all_records().values()}
        for name in order:
            if wanted[name] is not None:
                parent, tag = wanted[name]
                x.network.add_to_other_config(made[name], desired.LINK,
                                              "%s:%s" % (uuid.get(parent, parent), tag))
        source = XapiSource()
        source.update(x.network.get_all_records())
        status = source.links().status
        bad = [st.reason for st in status.values() if st.state != "accepted"]
        if bad:
            return False, " ".join(bad)
        return True, sorted("%s=VLAN %d of %s" % (st.name, st.tag, st.parent_name)
                            for st in status.values())
    finally:
        for ref in made.values():
            x.network.destroy(ref)


def links_through_api(case, env):
    """POST each network, then PUT each link in the case's order (a cycle needs its
    networks first), as a controller would."""
    api = start(env["served"], env["tls"])
    http = Http(Client(socket_path=api.socket))
    order, _wanted = _link_networks(case)
    try:
        for name in order:
            assert http("POST", "/v1/networks", {"name": name})[0] == 201
        views = {}
        for name, link in case:
            if link is None:
                continue
            status, data = http("PUT", "/v1/networks/%s/link" % name,
                                {"parent": link[0], "tag": link[1]})
            if status != 200:
                assert status in (400, 404, 409), (status, data)
                return False, data["error"]["message"]
            views[name] = data
        return True, sorted("%s=VLAN %d of %s" % (name, v["link"]["tag"],
                                                  v["link"]["parent_name"])
                            for name, v in views.items())
    finally:
        for name in order:
            http("DELETE", "/v1/networks/%s" % name)
        api.close()


def links_through_topology(case, env):
    """One file with every network and its link, planned against the host."""
    from agent.topology.plan import CONFLICT, plan
    order, wanted = _link_networks(case)
    lines = ["name: lab", "networks:"]
    for name in order:
        lines.append("  - name: %s" % name)
        if wanted[name] is not None:
            lines.append("    link: {parent: %s, tag: %d}" % (json.dumps(wanted[name][0]),
                                                              wanted[name][1]))
    try:
        parsed = topology.parse(topology.loads("\n".join(lines) + "\n", fmt="yaml"))
        actions = plan(env["xenapi"], parsed)
    except InvalidInput as exc:
        return False, exc.message
    conflicts = [a.detail for a in actions if a.kind == CONFLICT]
    if conflicts:
        return False, " ".join(conflicts)
    return True, sorted("%s=%s" % (n.name, n.link) for n in parsed.networks if n.link)


LINK_ENTRY_POINTS = [("xe", links_through_xe), ("api", links_through_api),
                     ("topology", links_through_topology)]


@pytest.mark.parametrize("case,reason,accepted", [c[1:] for c in LINK_CASES],
                         ids=[c[0] for c in LINK_CASES])
def test_every_entry_point_accepts_and_refuses_the_same_links(served, xenapi, tls_files,
                                                              case, reason, accepted):
    env = {"served": served, "xenapi": xenapi, "tls": tls_files}
    results = {name: run(case, env) for name, run in LINK_ENTRY_POINTS}
    if reason is OK:
        assert results == {name: (True, accepted) for name, _run in LINK_ENTRY_POINTS}
    else:
        refused = {name: ok is False and all(part in said for part in reason)
                   for name, (ok, said) in results.items()}


# ---- networks that span the pool ------------------------------------------------------------
# A network's span and VNI through xe (other_config read by the daemon: agent.core.tunnels),
# the HTTP API and a topology file applied; the config file defines gateways on bridges
# and has no networks. xe has no words for a span or for "a free VNI" (``None`` below:
# not expressible there). A case may start from a spanning network "a" with a VNI; the
# one given is network "b".
N_A = "n/a"
SPAN_CASES = [
    ("vni-given", None, {"span": "pool", "vni": 5001}, OK, 5001),
    ("vni-highest", None, {"span": "pool", "vni": 16777215}, OK, 16777215),
    ("vni-free", None, {"span": "pool"}, OK, 1),
    ("vni-free-after-a-used-one", 1, {"span": "pool"}, OK, 2),
    ("span-in-upper-case", None, {"span": "POOL", "vni": 9}, OK, 9),
    ("vni-zero", None, {"span": "pool", "vni": 0},
     "vni 0 is out of range: use a whole number from 1 to 16777215", None),
    ("vni-too-big", None, {"span": "pool", "vni": 16777216},
     "vni 16777216 is out of range: use a whole number from 1 to 16777215", None),
    ("vni-already-used", 7, {"span": "pool", "vni": 7}, "7 is already used by network",
     None),
    ("span-unknown", None, {"span": "rack"},
     "'rack' is not a span: use host (one host's private network) or pool", None),
    ("vni-without-span", None, {"vni": 7},
     "vni is for a network that spans the pool (span pool)", None),
]


@pytest.fixture
def pool_of_three(engine):
    """The simulator as a pool of three hosts with addresses on their management PIFs."""
    from agent.xapisim import pool as members
    first = next(iter(engine.objects["host"]))
    members.configure_management(engine, first, "10.0.0.1", "255.255.255.0")
    for n in (2, 3):
        members.add_host(engine, "host-%d" % n, "openvswitch", address="10.0.0.%d" % n)
    return engine


def span_through_xe(existing, request, env):
    if request.get("span", "").lower() != "pool" or "vni" not in request:
        return N_A   # in xe, writing the VNI is what declares the span
    from agent.core import tunnels
    x = env["xenapi"]
    if existing is not None:
        x.network.create({"name_label": "a", "name_description": "",
                          "other_config": {desired.VNI: str(existing)}})
    x.network.create({"name_label": "b", "name_description": "",
                      "other_config": {desired.VNI: str(request["vni"])}})
    records = {"network": x.network.get_all_records(), "host": x.host.get_all_records(),
               "PIF": x.PIF.get_all_records(), "tunnel": x.tunnel.get_all_records(),
               "host_metrics": x.host_metrics.get_all_records()}
    shapes = {s.name: s for s in tunnels.shapes(records).values()}
    refused = [s.reason for s in shapes.values() if s.state == tunnels.INVALID]
    if refused:
        return False, " ".join(refused)
    return True, shapes["b"].vni


def span_through_api(existing, request, env):
    api = start(env["served"], env["tls"])
    try:
        http = Http(Client(socket_path=api.socket))
        if existing is not None:
            status, data = http("POST", "/v1/networks",
                                {"name": "a", "span": "pool", "vni": existing})
            assert status == 201, data
        status, data = http("POST", "/v1/networks", dict(request, name="b"))
        if status != 201:
            assert status in (400, 409), (status, data)
            return False, data["error"]["message"]
        assert data["span"] == "pool" and data["tunnels"]["state"] == "ready", data
        return True, data["vni"]
    finally:
        api.close()


def span_through_topology(existing, request, env):
    from agent.core import tunnels
    from agent.service.networks import Networks
    from agent.topology import apply
    x = env["xenapi"]
    if existing is not None:
        Networks(x).create("a", span="pool", vni=existing)
    lines = ["name: lab", "networks:", "  - name: b"]
    lines += ["    %s: %s" % (key, json.dumps(value)) for key, value in sorted(request.items())]
    try:
        parsed = topology.parse(topology.loads("\n".join(lines) + "\n", fmt="yaml"))
        apply.apply(x, parsed)
    except (InvalidInput, Conflict) as exc:
        return False, exc.message
    rec = x.network.get_record(x.network.get_by_name_label("b")[0])
    assert len(rec["PIFs"]) == 3 and int(rec["MTU"]) == tunnels.MTU
    return True, int(rec["other_config"][desired.VNI])


SPAN_ENTRY_POINTS = [("xe", span_through_xe), ("api", span_through_api),
                     ("topology", span_through_topology)]


@pytest.mark.parametrize("existing,request_,reason,vni", [c[1:] for c in SPAN_CASES],
                         ids=[c[0] for c in SPAN_CASES])
def test_every_entry_point_spans_and_refuses_the_same(pool_of_three, served, xenapi,
                                                      tls_files, existing, request_, reason,
                                                      vni):
    env = {"served": served, "xenapi": xenapi, "tls": tls_files}
    results = {}
    for name, run in SPAN_ENTRY_POINTS:
        results[name] = run(existing, request_, env)
        for ref in xenapi.network.get_all():   # the next entry point starts afresh
            if xenapi.network.get_name_label(ref) in ("a", "b"):
                steps.discard_network(xenapi, ref)
    results = {k: v for k, v in results.items() if v != N_A}
    assert len(results) >= 2
    if reason is OK:
        assert results == {name: (True, vni) for name in results}
    else:
        refused = {name: ok is False and reason in said for name, (ok, said) in results.items()}
        assert all(refused.values()), "expected every entry point to refuse with %r, got %s" \
            % (reason, json.dumps(results, indent=1))
