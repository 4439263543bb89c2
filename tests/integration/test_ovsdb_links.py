"""agent.adapters.ovsdb against a real, private ovsdb-server + ovs-vswitchd (userspace
datapath) in a test namespace: the daemon's IDL connection and its link writer.

What a user would see, through ovs-vsctl and real packets: the patch-port pair with the tag
on the parent's side, foreign ports untouched, own ports repaired or removed, nothing left
on a bridge whose peer went, and the connection surviving an ovsdb-server restart.
"""
import threading
import time

import pytest

from agent.adapters import ovsdb
from agent.core import ports
from agent.core.links import DesiredLink
from agent.errors import OvsdbUnavailable
from agent.xapisim import ovs
from tests.integration import netns as N

CHILD_NET = "c0c0c0c0-0000-4000-8000-000000000001"
PARENT_NET = "babababa-0000-4000-8000-000000000002"
LINK = DesiredLink(CHILD_NET, "xapi1", PARENT_NET, "xapi2", 102)
CHILD_PORT, PARENT_PORT = ports.link_port_names(CHILD_NET)


@pytest.fixture
def host():
    reason = ovs.installed()
    if reason:
        pytest.skip(reason + " (tests/run installs it)")
    ns = N.Netns("ovs")
    switch = None
    try:
        switch = ovs.Ovs.start(ns.name)
        switch.add_bridge("xapi1", {"xs-network-uuids": CHILD_NET})
        switch.add_bridge("xapi2", {"xs-network-uuids": PARENT_NET})
        yield ns, switch
    finally:
        if switch is not None:
            switch.stop()
        ns.delete()


@pytest.fixture
def conn(host):
    changes = threading.Event()
    connection = ovsdb.Ovsdb(host[1].remote, on_change=changes.set).start()
    connection.changes = changes
    N.wait_for(lambda: connection.connected, timeout=20, message="OVSDB connection")
    yield connection
    connection.stop()
    assert not connection.alive()


def port_row(switch, name):
    """(bridge, tag, type, options, external_ids) of port ``name`` as ovs-vsctl sees it."""
    bridge = switch.vsctl("port-to-br", name).strip()
    tag = switch.get("Port", name, "tag")
    return (bridge, None if tag == "[]" else int(tag), switch.get("Interface", name, "type"),
            switch.get("Interface", name, "options"),
            switch.external_ids_of("Port", name))


def test_the_pair_is_made_with_the_tag_on_the_parent_side(host, conn):
    _ns, switch = host
    results, writes = conn.reconcile_links([LINK])
    assert results == {CHILD_NET: ("applied", None)}
    assert len(writes) == 2
    child = port_row(switch, CHILD_PORT)
    parent = port_row(switch, PARENT_PORT)
    assert child[:4] == ("xapi1", None, "patch", '{peer=%s}' % PARENT_PORT)
    assert parent[:4] == ("xapi2", 102, "patch", '{peer=%s}' % CHILD_PORT)
    for ids in (child[4], parent[4], switch.external_ids_of("Interface", CHILD_PORT)):
        assert ids["xapi-gateway-owner"] == "xapi-gateway"
        assert ids["xapi-gateway-kind"] == "link"
        assert ids["xapi-gateway-for"] == CHILD_NET
    # a second round has nothing to write
    assert conn.reconcile_links([LINK]) == ({CHILD_NET: ("applied", None)}, [])


def test_packets_pass_only_on_the_links_tag(host, conn):
    """A VM on the child bridge (untagged) reaches a tag-102 port of the parent's bridge,
    not a tag-103 one: real packets through ovs-vswitchd's userspace datapath."""
    ns, switch = host
    vm, v102, v103 = N.Netns("vm"), N.Netns("v102"), N.Netns("v103")
    try:
        N.ovs_endpoint(switch, ns, "xapi1", "vif1.0", vm, "192.168.50.10/24")
        N.ovs_endpoint(switch, ns, "xapi2", "p102", v102, "192.168.50.20/24", tag=102)
        N.ovs_endpoint(switch, ns, "xapi2", "p103", v103, "192.168.50.30/24", tag=103)
        assert not N.pings(vm, "192.168.50.20")   # no link yet
        conn.reconcile_links([LINK])
        assert N.pings(vm, "192.168.50.20", count=3)
        assert not N.pings(vm, "192.168.50.30")
        assert not N.pings(v103, "192.168.50.10")
    finally:
        for n in (vm, v102, v103):
            n.delete()


def test_foreign_ports_are_never_touched(host, conn):
    _ns, switch = host
    # a foreign patch pair, a foreign tagged port, and a foreign port squatting on the
    # name of the link's parent-side port
    switch.vsctl("add-port", "xapi1", "theirs1", "--", "set", "Interface", "theirs1",
                 "type=patch", "options:peer=theirs2")
    switch.vsctl("add-port", "xapi2", "theirs2", "tag=7", "--", "set", "Interface",
                 "theirs2", "type=patch", "options:peer=theirs1")
    before = {p: port_row(switch, p) for p in ("theirs1", "theirs2")}
    other = DesiredLink("d0d0d0d0-0000-4000-8000-000000000003", "xapi2", CHILD_NET,
                        "xapi1", 5)
    squat = ports.link_port_names(other.network)[1]
    switch.vsctl("add-port", "xapi1", squat, "tag=9", "--", "set", "Interface", squat,
                 "type=internal")
    results, _writes = conn.reconcile_links([LINK, other])
    assert results[CHILD_NET] == ("applied", None)
    state, reason = results[other.network]
    assert state == "error" and squat in reason and "did not create" in reason
    # the link whose name is taken got neither of its ports
    assert ports.link_port_names(other.network)[0] not in switch.list_ports("xapi2")
    assert port_row(switch, squat)[:3] == ("xapi1", 9, "internal")
    # dropping every link removes its own ports only
    assert conn.reconcile_links([]) == ({}, [
        "removed link port %s from xapi1" % CHILD_PORT,
        "removed link port %s from xapi2" % PARENT_PORT])
    assert {p: port_row(switch, p) for p in ("theirs1", "theirs2")} == before
    assert squat in switch.list_ports("xapi1")
    assert switch.list_ports("xapi2") == ["theirs2"]


def test_two_links_with_one_port_name_are_not_merged(host, conn):
    _ns, switch = host
    twin = DesiredLink(CHILD_NET[:14] + "ffff-4000-8000-000000000009", "xapi2", CHILD_NET,
                       "xapi1", 7)
    assert ports.link_port_names(twin.network) == (CHILD_PORT, PARENT_PORT)
    results, _writes = conn.reconcile_links([LINK, twin])
    assert results[CHILD_NET] == ("applied", None)
    assert results[twin.network][0] == "error"
    assert "already that of link %s" % CHILD_NET in results[twin.network][1]
    assert port_row(switch, PARENT_PORT)[:2] == ("xapi2", 102)


def test_a_removed_or_altered_own_port_is_restored(host, conn):
    _ns, switch = host
    conn.reconcile_links([LINK])
    conn.changes.clear()
    switch.vsctl("del-port", PARENT_PORT)
    # the connection says so at once: the reconciler is woken by this
    assert conn.changes.wait(5)
    results, writes = conn.reconcile_links([LINK])
    assert writes == ["added link port %s to xapi2 (tag 102)" % PARENT_PORT]
    assert port_row(switch, PARENT_PORT)[:2] == ("xapi2", 102)

    switch.vsctl("set", "Port", PARENT_PORT, "tag=103")
    switch.vsctl("set", "Interface", CHILD_PORT, "options:peer=elsewhere", "type=internal")
    switch.vsctl("remove", "Port", CHILD_PORT, "external_ids", "xapi-gateway-for")
    _results, writes = conn.reconcile_links([LINK])
    assert len(writes) == 3, writes
    assert port_row(switch, PARENT_PORT)[1] == 102
    assert port_row(switch, CHILD_PORT)[2:4] == ("patch", '{peer=%s}' % PARENT_PORT)
    assert port_row(switch, CHILD_PORT)[4]["xapi-gateway-for"] == CHILD_NET


def test_a_dropped_link_is_removed_and_a_changed_tag_follows(host, conn):
    _ns, switch = host
    conn.reconcile_links([LINK])
    conn.reconcile_links([LINK._replace(tag=200)])
    assert port_row(switch, PARENT_PORT)[1] == 200
    conn.reconcile_links([])
    assert switch.list_ports("xapi1") == [] and switch.list_ports("xapi2") == []


def test_only_the_bridges_of_its_links_wake_the_reconciler(host, conn):
    _ns, switch = host
    conn.reconcile_links([LINK._replace(child_bridge="xapi3")])   # waiting for xapi3
    time.sleep(0.2)
    conn.changes.clear()
    switch.add_bridge("xapi9")        # no link names it: a VIF's bridge, say
    switch.add_port("xapi2", "vif5.0")
    assert not conn.changes.wait(1)
    switch.add_bridge("xapi3")        # the link's missing bridge: a round at once
    assert conn.changes.wait(5)
    assert conn.reconcile_links([LINK._replace(child_bridge="xapi3")])[0] == {
        CHILD_NET: ("applied", None)}


def test_a_missing_bridge_waits_and_leaves_no_survivor(host, conn):
    _ns, switch = host
    conn.reconcile_links([LINK])
    switch.del_bridge("xapi1")   # XAPI removes the child's bridge: its port goes with it
    results, writes = conn.reconcile_links([LINK])
    assert results == {CHILD_NET: ("waiting", "bridge xapi1 does not exist on this host")}
    assert writes == ["removed link port %s from xapi2" % PARENT_PORT]
    assert switch.list_ports("xapi2") == []
    # and XAPI removes the parent's bridge too: nothing of ours kept it
    switch.del_bridge("xapi2")
    assert switch.list_bridges() == []
    results, writes = conn.reconcile_links([LINK])
    assert results[CHILD_NET] == ("waiting", "bridges xapi1 and xapi2 do not exist on "
                                             "this host")
    # the bridges come back (a VM starts): the link is made again
    switch.add_bridge("xapi1")
    switch.add_bridge("xapi2")
    assert conn.reconcile_links([LINK])[0] == {CHILD_NET: ("applied", None)}
    assert port_row(switch, PARENT_PORT)[:2] == ("xapi2", 102)


def test_reconnects_after_an_ovsdb_server_restart(host, conn):
    _ns, switch = host
    conn.reconcile_links([LINK])
    conn.changes.clear()
    switch.restart_ovsdb()
    # the drop and the resync are both reported (each wakes the reconciler)
    assert conn.changes.wait(10)
    N.wait_for(lambda: conn.connected, timeout=30, message="reconnection")
    switch.vsctl("del-port", CHILD_PORT)
    N.wait_for(lambda: CHILD_PORT not in conn.own_ports(), timeout=10,
               message="the replica to follow OVSDB after the reconnection")
    results, writes = conn.reconcile_links([LINK])
    assert results == {CHILD_NET: ("applied", None)}
    assert writes == ["added link port %s to xapi1" % CHILD_PORT]


def test_no_ovsdb_is_a_clear_error_and_no_exit(tmp_path):
    conn = ovsdb.Ovsdb("unix:%s" % (tmp_path / "db.sock")).start()
    try:
        N.wait_for(lambda: "does not answer" in (conn.reason or ""), timeout=20,
                   message="the reason")
        started = time.monotonic()
        with pytest.raises(OvsdbUnavailable) as err:
            conn.reconcile_links([LINK])
        assert time.monotonic() - started < 5
        assert "no socket" in str(err.value)
        assert conn.alive() and not conn.connected
    finally:
        conn.stop()
