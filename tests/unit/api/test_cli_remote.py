"""xgw's API commands against the served API: output, and exit codes a script relies on."""
import json

from agent import cli
from tests.unit.api.conftest import ADMIN, READ


def test_networks_create_list_show_delete(xgw):
    code, out, _ = xgw("networks", "create", "private", "--gateway", "172.16.0.1/24",
                       "--description", "OpenStack management")
    assert code == 0 and "172.16.0.1/24 NAT" in out
    code, out, _ = xgw("networks", "--json", "list")
    names = [n["name"] for n in json.loads(out)]
    assert code == 0 and "private" in names
    code, out, _ = xgw("networks", "list")
    assert out.splitlines()[0].split() == ["NAME", "BRIDGE", "VLAN", "SPAN", "GATEWAY", "LINK",
                                           "VMS"]
    code, out, _ = xgw("networks", "--json", "show", "private")
    assert json.loads(out)["gateway"]["address"] == "172.16.0.1/24"
    assert xgw("networks", "remove-gateway", "private")[0] == 0
    assert xgw("networks", "delete", "private")[0] == 0


def test_networks_links_create_show_set_remove_and_their_exit_codes(xgw):
    assert xgw("networks", "create", "private")[0] == 0
    code, out, err = xgw("networks", "create", "br100", "--link", "private:102")
    assert code == 0, err
    card = dict(line.split(None, 1) for line in out.splitlines())
    assert card["link"] == "VLAN 102 of private (accepted)"
    code, out, _ = xgw("networks", "list")
    row = [line.split() for line in out.splitlines() if line.startswith("br100")][0]
    assert row[2:8] == ["-", "host", "-", "VLAN", "102", "of"]
    # the tag is taken, a cycle: conflicts (5); a bad tag: usage (2); no parent: 4
    xgw("networks", "create", "storage")
    code, _, err = xgw("networks", "set-link", "storage", "private:102")
    assert code == 5 and "tag 102 of network private (" in err and "br100" in err
    code, _, err = xgw("networks", "set-link", "private", "br100:7")
    assert code == 5 and "link: the links form a cycle (" in err
    code, _, err = xgw("networks", "set-link", "storage", "private:4095")
    assert code == 2 and "tag 4095 is not a VLAN tag: use a whole number from 1 to 4094" \
        in err
    code, _, err = xgw("networks", "create", "x", "--link", "private")
    assert code == 2 and "is not PARENT:TAG" in err
    code, _, err = xgw("networks", "set-link", "storage", "nowhere:5")
    assert code == 4 and "parent network nowhere does not exist" in err
    code, out, _ = xgw("networks", "--json", "set-link", "storage", "private:103")
    assert code == 0 and json.loads(out)["link"]["tag"] == 103
    code, out, _ = xgw("networks", "--json", "remove-link", "storage")
    assert code == 0 and json.loads(out)["link"] is None
    assert xgw("networks", "--json", "show", "storage")[1].count('"link": null') == 1


def test_exit_codes(xgw, api, tmp_path):
    xgw("networks", "create", "pxe")
    code, _, err = xgw("networks", "create", "pxe")
    assert code == 5 and "exists already" in err
    code, _, err = xgw("networks", "show", "nope")
    assert code == 4 and "no network" in err
    code, _, err = xgw("networks", "create", "x", "--gateway", "10.0.0.1/24",
                       "--forward", "tcp:80")
    assert code == 2 and "PROTO:PORT=ADDRESS:PORT" in err
    code, _, err = xgw("networks", "create", "bad name")
    assert code == 2 and "name" in err
    code, _, err = xgw("--url", api.url, "--cafile", api.cafile, "networks", "list")
    assert code == 6 and "XGW_TOKEN" in err
    token = tmp_path / "token"
    token.write_text("read %s reader\n" % READ)
    assert xgw("--url", api.url, "--cafile", api.cafile, "--token-file", str(token),
               "networks", "list")[0] == 0
    code, _, err = xgw("--url", api.url, "--cafile", api.cafile, "--token-file", str(token),
                       "networks", "create", "y")
    assert code == 6 and "read-only" in err
    token.write_text(ADMIN)
    assert xgw("--url", api.url, "--cafile", api.cafile, "--token-file", str(token),
               "networks", "create", "y")[0] == 0


def test_unreachable_api_exits_3(tmp_path, capsys):
    conf = tmp_path / "agent.conf"
    conf.write_text("[api]\nsocket = %s\n" % (tmp_path / "none.sock"))
    assert cli.main(["-c", str(conf), "gateways"]) == 3
    assert "is the daemon running" in capsys.readouterr().err


def test_vms_create_start_delete(xgw):
    xgw("networks", "create", "pxe")
    code, out, err = xgw("vms", "create", "Compute", "--memory", "4096", "--vcpus", "2",
                         "--nic", "pxe", "--disk", "50", "--disk", "10@Local storage",
                         "--boot", "ncd", "--himn", "--start")
    assert code == 0, err
    assert "creating VM Compute" in err and "Running" in out and "disk 1" in out
    code, out, _ = xgw("vms", "--json", "show", "Compute")
    vm = json.loads(out)
    assert [d["size_gib"] for d in vm["disks"]] == [50, 10] and vm["himn"]
    code, _, err = xgw("vms", "delete", "Compute")
    assert code == 5 and "shut it down first" in err
    assert xgw("vms", "shutdown", "Compute", "--force")[0] == 0
    code, out, _ = xgw("vms", "delete", "Compute")
    assert code == 0 and "disks destroyed: 2" in out
    code, out, _ = xgw("vms", "list")
    assert out.splitlines() == ["NAME  STATE  MEMORY  VCPUS  NICS  DISKS"]


def test_gateways(xgw):
    code, out, _ = xgw("gateways")
    assert code == 0 and "applied" in out and "xapi1" in out


def test_inbound_sources_through_xgw_and_the_route_hints(xgw, api):
    code, out, _ = xgw("networks", "create", "lab", "--gateway", "172.16.5.1/24",
                       "--inbound", "192.0.2.0/24,198.51.100.7/32", "--inbound", "10.9.0.0/16")
    assert code == 0 and "in:10.9.0.0/16,192.0.2.0/24,198.51.100.7/32" in out
    code, _, err = xgw("networks", "create", "bad", "--gateway", "172.16.6.1/24",
                       "--inbound", "192.0.2.1/24")
    assert code == 2 and "has host bits set" in err
    # what xgw gateways prints for a gateway whose status carries a route
    api.api.state.statuses[0].update(inbound=["192.0.2.0/24"], routes=[{
        "source": "192.0.2.0/24", "via": "10.200.0.1",
        "commands": {"linux": "sudo ip route add 172.16.0.0/24 via 10.200.0.1",
                     "macos": "sudo route -n add -net 172.16.0.0/24 10.200.0.1",
                     "windows": "route ADD 172.16.0.0 MASK 255.255.255.0 10.200.0.1"}}])
    code, out, _ = xgw("gateways")
    assert code == 0
    assert ("To reach private (172.16.0.0/24) from 192.0.2.0/24 through this host "
            "(10.200.0.1), run there:") in out
    assert "  Linux:   sudo ip route add 172.16.0.0/24 via 10.200.0.1" in out.splitlines()
    assert "  Windows: route ADD 172.16.0.0 MASK 255.255.255.0 10.200.0.1" in out.splitlines()


def test_a_pin_through_xgw_networks_host(xgw):
    code, out, _ = xgw("networks", "create", "vlan", "--gateway", "172.16.7.1/24",
                       "--host", "xcp-host-2")
    assert code == 0 and "host:xcp-host-2" in out
    code, out, _ = xgw("networks", "--json", "show", "vlan")
    assert code == 0 and '"host": "xcp-host-2"' in out
    code, _, err = xgw("networks", "create", "bad", "--gateway", "172.16.8.1/24",
                       "--host", "h" * 256)
    assert code == 2 and "is not a host: give a host's uuid or name_label" in err


def test_a_network_spanning_the_pool_through_xgw(xgw, engine):
    from agent.xapisim import pool as members
    members.configure_management(engine, next(iter(engine.objects["host"])), "10.0.0.1",
                                 "255.255.255.0")
    members.add_host(engine, "host-2", "openvswitch", address="10.0.0.2")
    code, out, err = xgw("networks", "create", "lab", "--span", "pool", "--vni", "5001")
    assert code == 0, err
    card = dict(line.split(None, 1) for line in out.splitlines() if " " in line.strip())
    assert card["span"].startswith("pool vni 5001 center ")
    ports = [line.split() for line in out.splitlines() if line.startswith("ports on ")]
    assert sorted(p[-1] for p in ports) == ["1", "1"] and len(ports) == 2
    code, out, _ = xgw("networks", "list")
    row = next(line for line in out.splitlines() if line.startswith("lab "))
    assert "pool vni 5001 center" in row
    code, _, err = xgw("networks", "create", "lab2", "--span", "pool", "--vni", "5001")
    assert code == 5 and "VNI 5001 is already used by network lab" in err
    code, _, err = xgw("networks", "create", "lab3", "--vni", "5")
    assert code == 2 and "vni is for a network that spans the pool" in err


def test_vms_create_on_a_pool_host_and_an_unknown_one(xgw, served):
    from agent.xapisim import pool as members
    engine = served[0]
    other = members.add_host(engine, "xgw-sim-2", "openvswitch")
    assert xgw("networks", "create", "private")[0] == 0
    code, _, err = xgw("vms", "create", "ctl", "--nic", "private", "--start",
                       "--host", "xgw-sim-9")
    assert code != 0 and "host 'xgw-sim-9' is no host of this pool" in err, err
    assert "ctl" not in xgw("vms", "list")[1]
    code, out, _ = xgw("vms", "--json", "create", "ctl", "--nic", "private", "--start",
                       "--host", "xgw-sim-2")
    assert code == 0 and json.loads(out)["power_state"] == "Running"
    [vm] = [ref for ref, rec in engine.objects["VM"].items() if rec["name_label"] == "ctl"]
    assert engine.objects["VM"][vm]["resident_on"] == other
