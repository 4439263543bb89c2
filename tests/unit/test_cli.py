"""The command lines: exit codes and messages a script or a person relies on."""
import json
import os

from agent import cli
from agent.daemon import main as daemon_main

GOOD = "[agent]\nruntime_dir = %s\n[gateway:private]\nbridge = xapi1\naddress = 172.16.1.1/24\n"


def write(tmp_path, text, name="agent.conf"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_check_config_valid(tmp_path, capsys):
    path = write(tmp_path, GOOD % tmp_path)
    assert daemon_main.main(["-c", path, "--check-config"]) == 0
    out = capsys.readouterr().out
    assert "1 gateway(s)" in out and "private (172.16.1.1/24 on xapi1, NAT)" in out
    assert cli.main(["-c", path, "check-config"]) == 0


def test_check_config_invalid_exits_2_naming_the_key(tmp_path, capsys):
    path = write(tmp_path, "[gateway:private]\nbridge = xapi1\naddress = 172.16.1.1/33\n")
    assert daemon_main.main(["-c", path, "--check-config"]) == 2
    assert "[gateway:private]: address '172.16.1.1/33'" in capsys.readouterr().err
    assert cli.main(["-c", path, "check-config"]) == 2


def test_missing_explicit_config_is_an_error(tmp_path, capsys):
    assert daemon_main.main(["-c", str(tmp_path / "nope.conf"), "--check-config"]) == 2
    assert "cannot read config" in capsys.readouterr().err


def test_help_config_lists_every_option(capsys):
    assert daemon_main.main(["--help-config"]) == 0
    out = capsys.readouterr().out
    for key in ("check_interval", "xtables_lock", "bridge", "address", "nat"):
        assert key in out


def test_status_without_daemon_says_so(tmp_path, capsys):
    path = write(tmp_path, GOOD % tmp_path)
    assert cli.main(["-c", path, "status"]) == cli.EXIT_UNAVAILABLE
    assert "is xapi-gateway-agent running?" in capsys.readouterr().err


def test_status_table_and_json(tmp_path, capsys):
    path = write(tmp_path, GOOD % tmp_path)
    status = {"pid": os.getpid(), "summary": "2 gateways: 1 applied, 1 refused",
              "xapi": {"url": "unix:/var/lib/xcp/xapi", "connected": False,
                       "reason": "ConnectionRefusedError"},
              "gateways": [
                  {"name": "private", "bridge": "xapi1", "address": "172.16.1.1/24",
                   "nat": True, "state": "applied", "reason": None, "error": None},
                  {"name": "shadow", "bridge": "xapi2", "address": "172.16.1.129/25",
                   "nat": True, "state": "refused", "error": None,
                   "reason": "subnet 172.16.1.128/25 overlaps gateway private"}]}
    (tmp_path / "status.json").write_text(json.dumps(status))
    assert cli.main(["-c", path, "status"]) == 0  # our own pid: "running"
    out = capsys.readouterr().out
    assert "running" in out and "2 gateways: 1 applied, 1 refused" in out
    assert "overlaps gateway private" in out
    assert "XAPI unix:/var/lib/xcp/xapi: NOT connected (ConnectionRefusedError)" in out
    assert cli.main(["-c", path, "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gateways"][1]["state"] == "refused"


def test_cleanup_refuses_while_the_daemon_runs(tmp_path, capsys):
    path = write(tmp_path, GOOD % tmp_path)
    (tmp_path / "status.json").write_text(json.dumps({"pid": os.getpid(), "gateways": []}))
    assert cli.main(["-c", path, "cleanup"]) == cli.EXIT_FAILURE
    assert "stop it first" in capsys.readouterr().err


def test_no_command_is_a_usage_error(capsys):
    assert cli.main([]) == cli.EXIT_USAGE


def test_check_config_warns_of_a_tcp_only_problem_and_exits_0(tmp_path, capsys):
    """The shipped unit runs --check-config as ExecStartPre: a problem that only keeps
    the API off TCP must not keep the gateways from starting; it is named, as a warning."""
    tokens = tmp_path / "tokens"
    tokens.write_text("admin %s\n" % ("a" * 40))
    os.chmod(str(tokens), 0o644)
    text = (GOOD % tmp_path) + ("[api]\nlisten = 127.0.0.1:8443\ntls_cert = %s/c.pem\n"
                                "tls_key = %s/k.pem\ntokens = %s\n" % (tmp_path, tmp_path,
                                                                      tokens))
    path = write(tmp_path, text)
    assert daemon_main.main(["-c", path, "--check-config"]) == 0
    captured = capsys.readouterr()
    assert "1 gateway(s)" in captured.out
    assert "warning: the API will not be served on TCP 127.0.0.1:8443" in captured.err
    assert "readable by others (mode 644)" in captured.err
    assert "the Unix socket and the gateways will run" in captured.err


def test_status_shows_the_links_and_their_state(tmp_path, capsys):
    path = write(tmp_path, GOOD % tmp_path)
    status = {"pid": os.getpid(), "summary": "0 gateways; 2 links: 1 accepted, 1 refused",
              "gateways": [], "links": [
                  {"network": "c-uuid", "name": "br100", "bridge": "xapi3",
                   "parent": "p-uuid", "parent_name": "private", "tag": 102,
                   "state": "accepted", "reason": None},
                  {"network": "d-uuid", "name": "storage", "bridge": "xapi4",
                   "parent": "p-uuid", "parent_name": "private", "tag": 102,
                   "state": "refused", "reason": "tag 102 of network private is the link "
                                                 "of network br100 already"}]}
    (tmp_path / "status.json").write_text(json.dumps(status))
    assert cli.main(["-c", path, "status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-3].split() == ["NETWORK", "BRIDGE", "VLAN", "OF", "TAG", "STATE", "DETAIL"]
    assert lines[-2].split() == ["br100", "xapi3", "private", "102", "accepted"]
    assert lines[-1].split()[:5] == ["storage", "xapi4", "private", "102", "refused"]
    assert lines[-1].endswith("tag 102 of network private is the link of network br100 "
                              "already")


def test_status_shows_the_spanning_networks(tmp_path, capsys):
    """The tunnels part of status.json as the daemon's PlacedSource writes it."""
    from tests.unit.daemon.test_placed_source import B, _source, _spanning
    path = write(tmp_path, GOOD % tmp_path)
    tunnels = _source("one", _spanning()).tunnel_status({"net-1": ("applied", None)})
    tunnels += _source("one", _spanning(vni="0")).tunnel_status()
    tunnels += _source(B, _spanning()).tunnel_status({"net-1": ("waiting", "bridge xapi1 "
                                                                "does not exist on this host")})
    (tmp_path / "status.json").write_text(json.dumps({"pid": os.getpid(), "gateways": [],
                                                      "tunnels": tunnels}))
    assert cli.main(["-c", path, "status"]) == 0
    out = capsys.readouterr().out.splitlines()
    table = [line.split() for line in out[out.index(next(
        line for line in out if line.startswith("NETWORK"))):]]
    assert table[0] == ["NETWORK", "BRIDGE", "VNI", "CENTER", "STATE", "PORTS"]
    assert table[1] == ["vlan", "xapi1", "7", "one", "ready", "one:1", "two:1", "(here", "1",
                        "applied)"]
    assert table[2][:5] == ["vlan", "xapi1", "-", "-", "invalid"]
    assert table[3][-3:] == ["(here", "1", "waiting)"]
    assert "vlan: xapi-gateway.vni 0 is out of range" in "\n".join(out)
    assert "vlan: this host's ports waiting: bridge xapi1 does not exist on this host" in out
