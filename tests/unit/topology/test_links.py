"""Links in a topology file: parsed like the API's values, checked with the host's links
by the plan before anything is written (all or nothing), made by apply in an order that
works, and left alone by a second apply."""
import pytest

from agent.core import desired
from agent.service.errors import Conflict, InvalidInput
from agent.service.networks import Networks
from agent.topology import apply as applier
from agent.topology import model
from agent.topology.plan import plan, summary


def topo(*networks):
    """networks: (name, link or None[, extra keys])."""
    items = []
    for net in networks:
        item = {"name": net[0]}
        if net[1] is not None:
            item["link"] = {"parent": net[1][0], "tag": net[1][1]}
        if len(net) > 2:
            item.update(net[2])
        items.append(item)
    return model.parse({"name": "lab", "networks": items})


def kinds(actions):
    return [(a.kind, a.name) for a in actions]


def link_of(x, name):
    ref = x.network.get_by_name_label(name)[0]
    return x.network.get_other_config(ref).get(desired.LINK)


def uuid_of(x, name):
    return x.network.get_uuid(x.network.get_by_name_label(name)[0])


@pytest.mark.parametrize("link,field,message", [
    ({"parent": "private", "tag": 0}, "networks[0].link.tag",
     "networks[0].link.tag 0 is not a VLAN tag: use a whole number from 1 to 4094"),
    ({"parent": "private", "tag": "102"}, "networks[0].link.tag",
     "networks[0].link.tag: '102' is not a whole number; write a VLAN tag from 1 to 4094"),
    ({"parent": "private"}, "networks[0].link.tag", "is required in a link"),
    ({"parent": "private", "tag": 5, "pif": "eth0"}, "networks[0].link.pif",
     "unknown key in a link"),
    ({"parent": 7, "tag": 5}, "networks[0].link.parent", "must be a string, not int"),
])
def test_bad_link_values_are_refused_with_the_field(link, field, message):
    with pytest.raises(InvalidInput) as err:
        model.parse({"name": "lab", "networks": [{"name": "br100", "link": link}]})
    assert err.value.details["field"] == field and message in err.value.message


def test_a_child_listed_before_its_parent_is_made_after_it(xenapi):
    lab = topo(("br100", ("private", 102)), ("private", None))
    actions = plan(xenapi, lab)
    assert kinds(actions) == [("create", "private"), ("create", "br100")]
    assert actions[1].detail == "+ network br100: link VLAN 102 of private"
    applier.apply(xenapi, lab)
    assert link_of(xenapi, "br100") == "%s:102" % uuid_of(xenapi, "private")
    assert summary(plan(xenapi, lab)) == "2 unchanged"


def test_a_parent_of_the_host_by_name_or_uuid(xenapi):
    Networks(xenapi).create("private")
    for parent in ("private", uuid_of(xenapi, "private")):
        actions = plan(xenapi, topo(("br100", (parent, 102))))
        assert kinds(actions) == [("create", "br100")]
    applier.apply(xenapi, topo(("br100", (uuid_of(xenapi, "private"), 102))))
    assert summary(plan(xenapi, topo(("br100", ("private", 102))))) == "1 unchanged"


def test_change_and_drop_a_link_in_place(xenapi):
    applier.apply(xenapi, topo(("private", None), ("br100", ("private", 102))))
    changed = topo(("private", None), ("br100", ("private", 103)))
    actions = plan(xenapi, changed)
    assert [a.detail for a in actions] == [
        "= network private", "~ network br100: link VLAN 102 of private -> VLAN 103 of "
        "private"]
    applier.apply(xenapi, changed)
    assert link_of(xenapi, "br100").endswith(":103")
    dropped = topo(("private", None), ("br100", None))
    assert plan(xenapi, dropped)[1].detail == \
        "~ network br100: link VLAN 103 of private -> none"
    applier.apply(xenapi, dropped)
    assert link_of(xenapi, "br100") is None


def test_a_parent_that_is_no_network_or_the_network_itself_is_invalid(xenapi):
    with pytest.raises(InvalidInput) as err:
        plan(xenapi, topo(("br100", ("nowhere", 102))))
    assert err.value.details["field"] == "networks[0].link.parent"
    assert err.value.message.startswith("networks[0].link.parent: parent network nowhere "
                                        "does not exist; define it under networks, or name "
                                        "one of the host's: ")
    with pytest.raises(InvalidInput) as err:
        plan(xenapi, topo(("br100", ("br100", 102))))
    assert err.value.message == ("networks[0].link: a network cannot be a VLAN of itself; "
                                 "name another network")


def _refused(x, lab):
    before = x.network.get_all_records()
    with pytest.raises(Conflict) as err:
        applier.apply(x, lab)
    assert x.network.get_all_records() == before   # nothing was changed
    return err.value.message


def test_conflicts_refuse_the_whole_apply_before_any_change(xenapi):
    x = xenapi
    Networks(x).create("private")
    Networks(x).create("storage", link={"parent": "private", "tag": 102})
    said = _refused(x, topo(("pxe", None), ("br100", ("private", 102))))
    assert "! network br100: link: tag 102 of network private (" in said
    assert "is the link of network storage (" in said
    said = _refused(x, topo(("a", ("b", 5)), ("b", ("a", 6))))
    assert "! network a: link: the links form a cycle (" in said
    assert "! network b: link: the links form a cycle (" in said
    said = _refused(x, topo(("br100", ("storage", 5))))
    assert "! network br100: link: parent storage (" in said and "links do not chain" in said
    said = _refused(x, topo(("br100", ("Pool-wide network associated with eth0", 5))))
    assert "link: its parent Pool-wide network associated with eth0 has a PIF" in said
    said = _refused(x, topo(("v7", ("private", 7), {"vlan": {"tag": 7}})))
    assert "! network v7: link: it has a PIF (a physical or VLAN network)" in said


def test_a_change_that_would_break_a_link_of_the_host_is_a_conflict(xenapi):
    x = xenapi
    applier.apply(x, topo(("private", None)))
    Networks(x).create("br100", link={"parent": "private", "tag": 102})
    said = _refused(x, topo(("private", ("pxe", 9)), ("pxe", None)))
    assert "! network br100: it would break the link of network br100: parent private (" \
        in said


def test_a_swap_of_tags_is_refused_as_apply_would_fail_half_way(xenapi):
    x = xenapi
    applier.apply(x, topo(("private", None), ("a", ("private", 1)), ("b", ("private", 2))))
    said = _refused(x, topo(("private", None), ("a", ("private", 2)), ("b", ("private", 1))))
    assert "(apply sets the links one network at a time, in order; make this change in a " \
        "second apply)" in said
