"""Links as the daemon reads them: ``xe network-param-set other-config:xapi-gateway.link=...``
written through the real XenAPI SDK into the simulator, read back by XapiSource (through
MergedSource and PlacedSource, as the daemon stacks them) and carried by the planner into
the round's plan: the DesiredLink when the link is good, its state when it is not, nothing
once the key is dropped."""
from agent.core import desired, links, planner
from agent.core.links import DesiredLink
from agent.daemon.sources import MergedSource, PlacedSource, StaticSource, XapiSource

OBSERVED = planner.Observed(links={}, addresses={}, routes=set(), tables={},
                            ip_forward=True)


def _network(x, name):
    ref = x.network.create({"name_label": name, "name_description": "",
                            "other_config": {}})
    return ref, x.network.get_uuid(ref), x.network.get_bridge(ref)


def _round(x, source, xapi):
    """What one reconcile round plans, after the XAPI watcher's update."""
    xapi.update(x.network.get_all_records())
    return planner.plan(source.gateways(), OBSERVED, {}, links=source.links())


def _stack(backend=links.OPENVSWITCH):
    xapi = XapiSource(backend=backend)
    return xapi, PlacedSource(MergedSource(StaticSource(), xapi), "")


def test_xe_other_config_makes_changes_and_drops_a_link(xenapi):
    x = xenapi
    xapi, source = _stack()
    private, p_uuid, p_bridge = _network(x, "private")
    br100, c_uuid, c_bridge = _network(x, "br100")
    assert _round(x, source, xapi).links == ()

    x.network.add_to_other_config(br100, desired.LINK, "%s:102" % p_uuid)
    plan = _round(x, source, xapi)
    assert plan.links == (DesiredLink(c_uuid, c_bridge, p_uuid, p_bridge, 102),)
    assert plan.link_status[c_uuid].state == links.ACCEPTED
    assert source.gateways() == {} and source.invalid() == {}   # a link is no gateway

    # xe network-param-set overwrites the value: the new tag replaces the old one
    x.network.remove_from_other_config(br100, desired.LINK)
    x.network.add_to_other_config(br100, desired.LINK, "%s:103" % p_uuid)
    assert [dl.tag for dl in _round(x, source, xapi).links] == [103]

    x.network.add_to_other_config(private, desired.LINK, "%s:7" % c_uuid)   # a cycle
    plan = _round(x, source, xapi)
    assert plan.links == ()
    assert {u: s.state for u, s in plan.link_status.items()} == {
        c_uuid: links.REFUSED, p_uuid: links.REFUSED}
    assert "the links form a cycle (" in plan.link_status[c_uuid].reason

    x.network.remove_from_other_config(private, desired.LINK)
    x.network.remove_from_other_config(br100, desired.LINK)     # xe network-param-remove
    plan = _round(x, source, xapi)
    assert (plan.links, plan.link_status) == ((), {})


def test_bad_values_from_xe_get_their_state_and_the_good_link_stays(xenapi):
    x = xenapi
    xapi, source = _stack()
    _private, p_uuid, _ = _network(x, "private")
    good, g_uuid, _ = _network(x, "good")
    bad, b_uuid, _ = _network(x, "bad")
    x.network.add_to_other_config(good, desired.LINK, "%s:102" % p_uuid)
    for value, state, reason in (
            ("%s:5000" % p_uuid, links.INVALID, "tag 5000 is not a VLAN tag"),
            ("private:102", links.INVALID, "parent network private does not exist"),
            ("%s:9" % b_uuid, links.INVALID, "a network cannot be a VLAN of itself")):
        x.network.remove_from_other_config(bad, desired.LINK)
        x.network.add_to_other_config(bad, desired.LINK, value)
        plan = _round(x, source, xapi)
        st = plan.link_status[b_uuid]
        assert (st.state, reason in st.reason) == (state, True), st.reason
        assert [dl.network for dl in plan.links] == [g_uuid]
    # the same tag of the same parent: the lower uuid keeps it, on every host alike
    x.network.remove_from_other_config(bad, desired.LINK)
    x.network.add_to_other_config(bad, desired.LINK, "%s:102" % p_uuid)
    plan = _round(x, source, xapi)
    keeper, loser = sorted([g_uuid, b_uuid])
    assert [dl.network for dl in plan.links] == [keeper]
    assert plan.link_status[loser].state == links.REFUSED
    assert plan.link_status[loser].reason.startswith("tag 102 of network private (")


def test_a_link_to_a_network_with_a_pif_is_refused(xenapi):
    x = xenapi
    xapi, source = _stack()
    wired = [rec for rec in x.network.get_all_records().values() if rec["PIFs"]][0]
    child, c_uuid, _ = _network(x, "br100")
    x.network.add_to_other_config(child, desired.LINK, "%s:102" % wired["uuid"])
    st = _round(x, source, xapi).link_status[c_uuid]
    assert st.state == links.REFUSED and "has a PIF (a physical or VLAN network)" in st.reason


def test_on_linux_bridges_every_link_is_refused(xenapi):
    x = xenapi
    xapi, source = _stack(backend=links.BRIDGE)
    _private, p_uuid, _ = _network(x, "private")
    child, c_uuid, _ = _network(x, "br100")
    x.network.add_to_other_config(child, desired.LINK, "%s:102" % p_uuid)
    plan = _round(x, source, xapi)
    assert plan.links == ()
    assert plan.link_status[c_uuid].state == links.REFUSED
    assert "this host uses Linux bridges" in plan.link_status[c_uuid].reason


def test_the_cached_networks_give_the_links_before_xapi_answers(xenapi, tmp_path):
    from agent.adapters.statefile import JsonCache
    x = xenapi
    _private, p_uuid, _ = _network(x, "private")
    child, c_uuid, _ = _network(x, "br100")
    x.network.add_to_other_config(child, desired.LINK, "%s:102" % p_uuid)
    cache = JsonCache(str(tmp_path / "xapi-networks.json"))
    XapiSource(cache).update(x.network.get_all_records())
    restarted = XapiSource(cache)          # a daemon restarted while XAPI is away
    assert [dl.network for dl in restarted.links().links] == [c_uuid]
