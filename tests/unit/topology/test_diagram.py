"""Diagrams of the host: every network and VM, deterministic, ids safe."""
import re

import pytest
import XenAPI

from agent.service.errors import InvalidInput
from agent.topology import diagram
from agent.topology.apply import apply
from agent.xapisim import server
from agent.xapisim.engine import Engine
from agent.xapisim.seed import seed


@pytest.fixture
def applied(xenapi, lab):
    apply(xenapi, lab)
    return xenapi


NETWORKS = ["pxe", "private", "br100", "Pool-wide network associated with eth0",
            "Host internal management network"]
VMS = ["Fuel", "Controller", "Compute"]


def test_mermaid_has_every_network_and_vm(applied):
    text = diagram.render(applied, "mermaid")
    lines = text.splitlines()
    assert lines[0] == "graph LR"
    for name in NETWORKS + VMS:
        assert '"%s<br/>' % name in text
    assert '    net_private(["private<br/>bridge xapi1<br/>gateway 172.16.0.1/24, NAT<br/>' \
           'topology blog-lab"])' in lines
    assert '    vm_Fuel["Fuel<br/>running, 2048 MiB, 1 vCPU<br/>topology blog-lab"]' in lines
    # NICs in device order, the HIMN's as device 9
    compute = [line.strip() for line in lines if line.strip().startswith("vm_Compute ---")]
    assert compute == ['vm_Compute ---|"nic 0"| net_pxe', 'vm_Compute ---|"nic 1"| net_private',
                       'vm_Compute ---|"nic 2"| net_br100',
                       'vm_Compute ---|"nic 9"| net_Host_internal_management_network']
    for line in lines[1:]:
        node = line.split()[0].split("(")[0].split("[")[0]
        assert re.match(r"^(net|vm)_[A-Za-z0-9_]+$", node), line


def test_dot_has_every_network_and_vm(applied):
    text = diagram.render(applied, "dot")
    assert text.startswith("graph xapi_gateway {\n    rankdir=LR;") and text.endswith("}\n")
    for name in NETWORKS + VMS:
        assert 'label="%s\\n' % name in text
    assert '"vm_Fuel" -- "net_Pool_wide_network_associated_with_eth0" [label="nic 1"];' in text
    assert '"net_Pool_wide_network_associated_with_eth0" [shape=ellipse, label="Pool-wide ' \
           'network associated with eth0\\nbridge xenbr0\\nphysical eth0"];' in text


def test_the_output_is_stable_and_the_same_on_another_host(applied, lab, model):
    first = diagram.render(applied, "mermaid"), diagram.render(applied, "dot")
    assert (diagram.render(applied, "mermaid"), diagram.render(applied, "dot")) == first
    other = Engine(model)  # a second host, its own uuids and MACs
    seed(other)
    servers, (host, port) = server.serve(other, host="127.0.0.1", port=0)
    try:
        session = XenAPI.Session("http://%s:%d" % (host, port))
        session.xenapi.login_with_password("root", "", "1.0", "diagram-tests")
        apply(session.xenapi, lab)
        assert (diagram.render(session.xenapi, "mermaid"),
                diagram.render(session.xenapi, "dot")) == first
    finally:
        server.shutdown(servers)


def test_a_topology_alone(applied, xenapi):
    from agent.service.networks import Networks
    Networks(xenapi).create("elsewhere")
    text = diagram.render(applied, "mermaid", topology="blog-lab")
    assert "elsewhere" not in text and "Host internal management network" in text
    assert "elsewhere" in diagram.render(applied, "mermaid")


def test_names_are_escaped_and_ids_kept_apart(xenapi, engine):
    engine.create("network", name_label='a "quoted" net', bridge="xapi7", other_config={})
    engine.create("network", name_label="a-quoted-net", bridge="xapi8", other_config={})
    engine.create("network", name_label="a_quoted_net", bridge="xapi9", other_config={})
    mermaid = diagram.render(xenapi, "mermaid")
    assert 'a #quot;quoted#quot; net' in mermaid
    dot = diagram.render(xenapi, "dot")
    assert 'label="a \\"quoted\\" net\\n' in dot
    ids = re.findall(r"^\s+(net_a_\w+)\(", mermaid, re.M)
    assert ids == ["net_a__quoted__net", "net_a_quoted_net", "net_a_quoted_net_2"]


def test_an_unknown_format(xenapi):
    with pytest.raises(InvalidInput) as info:
        diagram.render(xenapi, "svg")
    assert info.value.details["field"] == "format"
