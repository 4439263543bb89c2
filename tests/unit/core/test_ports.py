"""agent.core.ports: the daemon's OVS ports as data, and its marks."""
import pytest

from agent.core import ports
from agent.core.links import DesiredLink

LINK = DesiredLink("0a1b2c3d-4e5f-4000-8000-000000000001", "xapi3",
                   "99999999-0000-4000-8000-000000000002", "xapi1", 102)


def test_a_link_is_a_patch_pair_with_the_tag_on_the_parent_side():
    child, parent = ports.link_ports(LINK)
    assert (child.name, child.bridge, child.type, child.options, child.tag) == (
        "xgwc0a1b2c3d4e", "xapi3", "patch", {"peer": "xgwp0a1b2c3d4e"}, None)
    assert (parent.name, parent.bridge, parent.type, parent.options, parent.tag) == (
        "xgwp0a1b2c3d4e", "xapi1", "patch", {"peer": "xgwc0a1b2c3d4e"}, 102)
    assert child.key == parent.key == LINK.network
    for spec in (child, parent):
        assert len(spec.name) <= 15   # a Linux device name, whatever the datapath does
        ids = spec.external_ids()
        assert ids["xapi-gateway-owner"] == "xapi-gateway"
        assert ids["xapi-gateway-kind"] == "link"
        assert ids["xapi-gateway-for"] == LINK.network
        assert ids["xapi-gateway-parent"] == LINK.parent
        assert ids["xapi-gateway-tag"] == "102"
        assert ports.is_own(ids) and ports.is_own(ids, "link")
        assert not ports.is_own(ids, "tunnel")


def test_port_names_come_from_the_child_networks_uuid():
    other = LINK._replace(network="0a1b2c3e-4e5f-4000-8000-000000000001")
    names = [s.name for link in (LINK, other) for s in ports.link_ports(link)]
    assert len(set(names)) == 4
    # 40 bits of the uuid: two networks that share them would share names, and the
    # writer refuses the second link rather than merge them (test_ovsdb_links)
    twin = LINK._replace(network="0a1b2c3d-4eff-4000-8000-000000000001")
    assert ports.link_port_names(twin.network) == ports.link_port_names(LINK.network)


@pytest.mark.parametrize("ids", [
    None, {}, {"xapi-gateway-owner": "someone-else"},
    {"xs-vif-uuid": "x", "attached-mac": "aa:bb:cc:dd:ee:ff"},   # a VIF's, networkd's
    {"xapi-gateway-kind": "link", "xapi-gateway-for": "x"},      # the mark removed
])
def test_rows_without_the_mark_are_not_the_daemons(ids):
    assert not ports.is_own(ids)
