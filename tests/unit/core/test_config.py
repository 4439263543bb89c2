"""agent.core.config: configuration files as tables of texts, good and bad.

A bad file raises ConfigError whose message names the section and the key to fix (the
``details`` carry them too), and the whole file is refused.
"""
import ipaddress
from collections import OrderedDict

import pytest

from agent.core import config, model
from agent.errors import ConfigError

DEFAULT_AGENT = config.defaults().agent


def gw(name, bridge, address, nat=True):
    return model.Gateway(name=name, bridge=bridge, address=ipaddress.IPv4Interface(address),
                         nat=nat, source="config")


# ---- valid files -------------------------------------------------------------------------

VALID = [
    # (text, agent settings that differ from the defaults, gateways in file order)
    pytest.param("", {}, [], id="empty-file"),
    pytest.param("# only a comment\n\n; another\n", {}, [], id="only-comments"),
    pytest.param("[agent]\n", {}, [], id="empty-agent-section"),
    pytest.param(
        "[gateway:private]\nbridge = xapi1\naddress = 172.16.1.1/24\n",
        {}, [gw("private", "xapi1", "172.16.1.1/24")], id="minimal-nat-defaults-true"),
    pytest.param(
        "[gateway:private]\nbridge=xapi1\naddress=172.16.1.1/24\nnat=no\n",
        {}, [gw("private", "xapi1", "172.16.1.1/24", nat=False)], id="nat-no"),
    pytest.param(
        "# lab host\n[gateway:private]\n  # the first private network\n"
        "bridge: xapi1\naddress : 172.16.1.1/24\nnat = OFF\n",
        {}, [gw("private", "xapi1", "172.16.1.1/24", nat=False)],
        id="comments-colons-indent-case"),
    pytest.param(
        "[agent]\ncheck_interval = 2.5\nresync_interval = 60\nstate_dir = /srv/xgw\n"
        "runtime_dir = /run/xgw\nxtables_lock = /run/lock/xt\nudev = KERNEL\nlog_level = Debug\n",
        dict(check_interval=2.5, resync_interval=60.0, state_dir="/srv/xgw",
             runtime_dir="/run/xgw", xtables_lock="/run/lock/xt", udev="kernel",
             log_level="debug"),
        [], id="every-agent-key"),
    pytest.param("[agent]\nnetwork_conf = /srv/network.conf\novsdb = unix:/run/ovs/db.sock\n",
                 dict(network_conf="/srv/network.conf", ovsdb="unix:/run/ovs/db.sock"), [],
                 id="open-vswitch-keys"),
    pytest.param("[agent]\ncheck_interval = 0.5\nresync_interval = 86400\n",
                 dict(check_interval=0.5, resync_interval=86400.0), [], id="range-bounds"),
    pytest.param(
        "[gateway:b]\nbridge = xapi2\naddress = 10.2.0.1/16\nnat = false\n\n"
        "[agent]\nudev = off\n\n"
        "[gateway:a]\nbridge = xapi1\naddress = 172.16.1.1/24\n\n"
        "[gateway:c.lab-3]\nbridge = xenbr7\naddress = 192.168.50.1/30\nnat = 1\n",
        dict(udev="off"),
        [gw("b", "xapi2", "10.2.0.1/16", nat=False), gw("a", "xapi1", "172.16.1.1/24"),
         gw("c.lab-3", "xenbr7", "192.168.50.1/30")],
        id="several-gateways-in-file-order"),
]


@pytest.mark.parametrize("text, agent, gateways", VALID)
def test_parse_valid(text, agent, gateways):
    cfg = config.parse(text, "/etc/xapi-gateway/agent.conf")
    assert cfg.path == "/etc/xapi-gateway/agent.conf"
    assert cfg.agent == DEFAULT_AGENT._replace(**agent)
    assert isinstance(cfg.gateways, OrderedDict)
    assert list(cfg.gateways.items()) == [(g.name, g) for g in gateways]


def test_defaults():
    cfg = config.defaults()
    assert cfg.path is None
    assert cfg.gateways == {}
    assert cfg.agent == config.AgentSettings(
        check_interval=10.0, resync_interval=300.0, state_dir="/var/lib/xapi-gateway",
        runtime_dir="/run/xapi-gateway", xtables_lock="/run/xtables.lock",
        xtables_wait=10.0, udev="auto", log_level="info",
        network_conf="/etc/xensource/network.conf", ovsdb="unix:/var/run/openvswitch/db.sock")
    assert config.parse("").agent == cfg.agent


# ---- invalid files -----------------------------------------------------------------------

GW = "[gateway:a]\nbridge = xapi1\naddress = 172.16.1.1/24\n"

INVALID = [
    # (text, fragments of the message, expected subset of details)
    pytest.param("[gateways:a]\nbridge = xapi1\n", ["unknown section [gateways:a]",
                                                   "[agent], [xapi], [api] or [gateway:NAME]"],
                 dict(section="gateways:a"), id="unknown-section"),
    pytest.param("[Agent]\n", ["unknown section [Agent]"], dict(section="Agent"),
                 id="section-names-case-sensitive"),
    pytest.param("[DEFAULT]\nnat = no\n", ["unknown section [DEFAULT]"],
                 dict(section="DEFAULT"), id="no-configparser-defaults"),
    pytest.param(GW + "brige = xapi2\n", ["[gateway:a]", "unknown key 'brige'",
                                          "bridge, address, nat"],
                 dict(section="gateway:a", key="brige"), id="unknown-gateway-key"),
    pytest.param("[agent]\novsdb = tcp:127.0.0.1:6640\n",
                 ["[agent]", "ovsdb 'tcp:127.0.0.1:6640' is not unix:/PATH"],
                 dict(section="agent", key="ovsdb"), id="ovsdb-not-a-unix-socket"),
    pytest.param("[agent]\novsdb = unix:db.sock\n", ["[agent]", "is not unix:/PATH"],
                 dict(section="agent", key="ovsdb"), id="ovsdb-relative-path"),
    pytest.param("[agent]\nnetwork_conf = network.conf\n",
                 ["[agent]", "network_conf 'network.conf' must be an absolute path"],
                 dict(section="agent", key="network_conf"), id="network-conf-relative"),
    pytest.param("[agent]\ninterval = 5\n", ["[agent]", "unknown key 'interval'",
                                             "check_interval"],
                 dict(section="agent", key="interval"), id="unknown-agent-key"),
    pytest.param("[gateway:a]\nBridge = xapi1\naddress = 172.16.1.1/24\n",
                 ["[gateway:a]", "unknown key 'Bridge'"],
                 dict(section="gateway:a", key="Bridge"), id="keys-case-sensitive"),
    pytest.param("[gateway:a]\naddress = 172.16.1.1/24\n",
                 ["[gateway:a]", "missing required key 'bridge'"],
                 dict(section="gateway:a", key="bridge"), id="missing-bridge"),
    pytest.param("[gateway:a]\nbridge = xapi1\n",
                 ["[gateway:a]", "missing required key 'address'", "172.16.1.1/24"],
                 dict(section="gateway:a", key="address"), id="missing-address"),
    pytest.param("[gateway:a]\nbridge = xapi1\naddress = 172.16.1.1/33\n",
                 ["[gateway:a]", "address '172.16.1.1/33'", "not an IPv4 address"],
                 dict(section="gateway:a", key="address"), id="bad-cidr"),
    pytest.param("[gateway:a]\nbridge = xapi1\naddress = 172.16.1.1\n",
                 ["[gateway:a]", "address '172.16.1.1'", "needs a prefix length"],
                 dict(section="gateway:a", key="address"), id="no-prefix"),
    pytest.param("[gateway:a]\nbridge = xapi1\naddress = 172.16.1.0/24\n",
                 ["[gateway:a]", "address '172.16.1.0/24'", "network address",
                  "172.16.1.1/24"],
                 dict(section="gateway:a", key="address"), id="host-bits-zero"),
    pytest.param("[gateway:a]\nbridge = xenapi\naddress = 172.16.1.1/24\n",
                 ["[gateway:a]", "bridge 'xenapi'"],
                 dict(section="gateway:a", key="bridge"), id="reserved-bridge"),
    pytest.param("[gateway:a]\nbridge =\naddress = 172.16.1.1/24\n",
                 ["[gateway:a]", "bridge is empty"],
                 dict(section="gateway:a", key="bridge"), id="empty-value"),
    pytest.param(GW + "nat = maybe\n", ["[gateway:a]", "nat 'maybe' is not a boolean"],
                 dict(section="gateway:a", key="nat"), id="bad-boolean"),
    pytest.param("[gateway:a]\nbridge = xapi1\nbridge = xapi2\naddress = 172.16.1.1/24\n",
                 ["bridge", "gateway:a", "already exists"], {}, id="duplicate-key"),
    pytest.param(GW + GW, ["gateway:a", "already exists"], {}, id="duplicate-section"),
    pytest.param("[agent]\n[agent]\n", ["agent", "already exists"], {},
                 id="duplicate-agent-section"),
    pytest.param(GW + "[gateway:b]\nbridge = xapi1\naddress = 172.16.2.1/24\n",
                 ["[gateway:b]", "bridge xapi1 is already used by [gateway:a]"],
                 dict(section="gateway:b", key="bridge"), id="same-bridge-twice"),
    pytest.param("[gateway:]\nbridge = xapi1\naddress = 172.16.1.1/24\n",
                 ["[gateway:]", "gateway name is empty"], dict(section="gateway:"),
                 id="empty-gateway-name"),
    pytest.param("[gateway:a b]\nbridge = xapi1\naddress = 172.16.1.1/24\n",
                 ["[gateway:a b]", "gateway name 'a b'"], dict(section="gateway:a b"),
                 id="bad-gateway-name"),
    pytest.param("[agent]\ncheck_interval = 0.1\n",
                 ["[agent]", "check_interval '0.1' is out of range", "0.5 to 3600"],
                 dict(section="agent", key="check_interval"), id="check-interval-too-small"),
    pytest.param("[agent]\ncheck_interval = 3601\n",
                 ["[agent]", "check_interval '3601' is out of range"],
                 dict(section="agent", key="check_interval"), id="check-interval-too-big"),
    pytest.param("[agent]\ncheck_interval = soon\n",
                 ["[agent]", "check_interval 'soon' is not a number"],
                 dict(section="agent", key="check_interval"), id="check-interval-not-number"),
    pytest.param("[agent]\ncheck_interval = nan\n",
                 ["[agent]", "check_interval 'nan' is out of range"],
                 dict(section="agent", key="check_interval"), id="check-interval-nan"),
    pytest.param("[agent]\nresync_interval = 5\n",
                 ["[agent]", "resync_interval '5' is out of range"],
                 dict(section="agent", key="resync_interval"), id="resync-interval-range"),
    pytest.param("[agent]\nstate_dir = var/lib/xgw\n",
                 ["[agent]", "state_dir 'var/lib/xgw' must be an absolute path"],
                 dict(section="agent", key="state_dir"), id="relative-state-dir"),
    pytest.param("[agent]\nruntime_dir = run\n",
                 ["[agent]", "runtime_dir 'run' must be an absolute path"],
                 dict(section="agent", key="runtime_dir"), id="relative-runtime-dir"),
    pytest.param("[agent]\nudev = systemd\n",
                 ["[agent]", "udev 'systemd' is not one of: auto, udev, kernel, off"],
                 dict(section="agent", key="udev"), id="bad-udev-choice"),
    pytest.param("[agent]\nlog_level = verbose\n",
                 ["[agent]", "log_level 'verbose' is not one of"],
                 dict(section="agent", key="log_level"), id="bad-log-level"),
    pytest.param("bridge = xapi1\n", ["no section headers"], {}, id="no-section-header"),
    pytest.param("[gateway:a]\nbridge\n", ["bridge"], {}, id="key-without-value"),
]


@pytest.mark.parametrize("text, fragments, details", INVALID)
def test_parse_invalid(text, fragments, details):
    with pytest.raises(ConfigError) as info:
        config.parse(text, "/etc/xgw.conf")
    err = info.value
    assert err.code == "config_invalid"
    assert err.message.startswith("config /etc/xgw.conf")
    assert "\n" not in err.message
    for fragment in fragments:
        assert fragment in err.message
    assert err.details["path"] == "/etc/xgw.conf"
    for key, value in details.items():
        assert err.details[key] == value


def test_gateway_names_that_differ_only_by_space_are_refused():
    text = GW + "[gateway: a]\nbridge = xapi2\naddress = 172.16.2.1/24\n"
    with pytest.raises(ConfigError) as info:
        config.parse(text)
    assert "gateway: a" in info.value.message
    assert info.value.details["section"] == "gateway: a"


def test_duplicate_key_details_name_section_and_key():
    with pytest.raises(ConfigError) as info:
        config.parse("[gateway:a]\nbridge = xapi1\nbridge = xapi2\n")
    assert info.value.details.get("section") == "gateway:a"
    assert info.value.details.get("key") == "bridge"


def test_one_bad_gateway_refuses_the_whole_file():
    with pytest.raises(ConfigError):
        config.parse(GW + "[gateway:b]\nbridge = xapi2\naddress = 10.0.0.0/8\n")


# ---- load --------------------------------------------------------------------------------

def test_load_valid_file(tmp_path):
    path = tmp_path / "agent.conf"
    path.write_bytes(("# r\u00e9seau priv\u00e9\n" + GW).encode("utf-8"))
    cfg = config.load(str(path))
    assert cfg.path == str(path)
    assert list(cfg.gateways) == ["a"]


def test_load_names_the_file_in_parse_errors(tmp_path):
    path = tmp_path / "agent.conf"
    path.write_bytes(b"[gateway:a]\nbridge = xapi1\n")
    with pytest.raises(ConfigError) as info:
        config.load(str(path))
    assert info.value.message.startswith("config %s [gateway:a]" % path)
    assert info.value.details["path"] == str(path)


def test_load_missing_file(tmp_path):
    path = str(tmp_path / "absent.conf")
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert "cannot read config %s" % path in info.value.message
    assert "No such file or directory" in info.value.message
    assert info.value.details == {"path": path}


def test_load_directory(tmp_path):
    with pytest.raises(ConfigError) as info:
        config.load(str(tmp_path))
    assert "cannot read config %s" % tmp_path in info.value.message


def test_load_non_utf8_file(tmp_path):
    path = tmp_path / "agent.conf"
    path.write_bytes(b"# r\xe9seau (latin-1)\n" + GW.encode("ascii"))
    with pytest.raises(ConfigError) as info:
        config.load(str(path))
    assert "config %s is not UTF-8" % path in info.value.message
    assert info.value.details == {"path": str(path)}


def test_load_utf8_file_with_bom(tmp_path):
    path = tmp_path / "agent.conf"
    path.write_bytes(b"\xef\xbb\xbf" + GW.encode("ascii"))
    assert list(config.load(str(path)).gateways) == ["a"]


# ---- reference ---------------------------------------------------------------------------

def test_reference_mentions_every_key():
    text = config.reference()
    lines = text.splitlines()
    assert lines[0] == "[agent]"
    assert any(line.startswith("[gateway:NAME]") for line in lines)
    blocks = {}  # section -> its lines (a key such as host is in two sections)
    section = None
    for line in lines:
        if line.startswith("["):
            section = line.split("]")[0] + "]"
            blocks.setdefault(section, [])
        elif section:
            blocks[section].append(line)
    for name, schema in (("[agent]", config.AGENT_SCHEMA),
                         ("[gateway:NAME]", config.GATEWAY_SCHEMA),
                         ("[xapi]", config.XAPI_SCHEMA), ("[api]", config.API_SCHEMA)):
        for key, option in schema.items():
            line = [l for l in blocks[name] if l.split() and l.split()[0] == key]
            assert len(line) == 1, key
            assert option.help in line[0]
            default = "(required)" if option.default is None else \
                "no" if option.default is False else \
                "(none)" if option.default == () else str(option.default)
            assert default in line[0]


def test_schema_defaults_are_valid_values():
    for key, option in config.AGENT_SCHEMA.items():
        assert option.parse(str(option.default), key) == option.default
    assert config.GATEWAY_SCHEMA["nat"].parse(str(config.GATEWAY_SCHEMA["nat"].default),
                                              "nat") is True


# ---- forwards ----------------------------------------------------------------------------

@pytest.mark.parametrize("line, expected", [
    pytest.param("", "", id="absent"),
    pytest.param("forwards =\n", "", id="empty"),
    pytest.param("forwards = tcp:8080=172.16.1.10:80\n", "tcp:8080=172.16.1.10:80", id="one"),
    pytest.param("# DNS and web\nforwards = udp:53=172.16.1.11, tcp:8080=172.16.1.10:80\n",
                 "tcp:8080=172.16.1.10:80,udp:53=172.16.1.11:53", id="two-comment"),
])
def test_gateway_forwards(line, expected):
    gateway = config.parse(GW + line).gateways["a"]
    assert model.format_forwards(gateway.forwards) == expected
    assert gateway == model.make_gateway("a", "xapi1", "172.16.1.1/24", forwards=expected)


@pytest.mark.parametrize("line, fragments", [
    pytest.param("forwards = tcp:8080\n", ["forwards entry 1 'tcp:8080'"], id="syntax"),
    pytest.param("forwards = tcp:8080=172.16.2.10:80\n",
                 ["outside the gateway's subnet 172.16.1.0/24"], id="outside-subnet"),
    pytest.param("forwards = tcp:8080=172.16.1.1:80\n", ["the gateway's own address"],
                 id="gateway-itself"),
    pytest.param("forwards = tcp:1=172.16.1.9,tcp:1=172.16.1.8\n", ["forwarded twice"],
                 id="twice"),
    pytest.param("forwards = tcp:443=172.16.1.9\n", ["XAPI (HTTPS)"], id="reserved"),
])
def test_gateway_forwards_invalid(line, fragments):
    with pytest.raises(ConfigError) as info:
        config.parse(GW + line, "/etc/xgw.conf")
    assert info.value.message.startswith("config /etc/xgw.conf [gateway:a]: forwards")
    for fragment in fragments:
        assert fragment in info.value.message
    assert info.value.details == dict(path="/etc/xgw.conf", section="gateway:a", key="forwards")


@pytest.mark.parametrize("second,key,reason", [
    ("address = 172.16.2.1/24\nforwards = tcp:8080=172.16.2.10:80\n", "forwards",
     "tcp port 8080 is already forwarded by gateway a (to 172.16.1.10:80)"),
    ("address = 172.16.0.1/16\n", "address",
     "subnet 172.16.0.0/16 overlaps gateway a (172.16.1.0/24)"),
])
def test_gateways_of_one_file_that_clash_make_it_invalid(second, key, reason):
    """What the daemon would refuse the second gateway for (agent.core.conflicts) makes
    the file invalid, so --check-config and a reload say so, in the daemon's words."""
    text = (GW + "forwards = tcp:8080=172.16.1.10:80\n"
            "[gateway:b]\nbridge = xapi2\n" + second)
    with pytest.raises(ConfigError) as info:
        config.parse(text)
    assert info.value.message == "config <string> [gateway:b]: " + reason
    assert info.value.details["key"] == key


@pytest.mark.parametrize("line,value", [
    ("password = abc #def\n", "abc #def"),
    ("password = abc ;def\n", "abc ;def"),
    ("# a comment line\npassword = abc\n", "abc"),
    ("; a comment line\npassword = abc\n", "abc"),
])
def test_a_hash_after_a_value_is_part_of_it(line, value):
    """Comments are whole lines: 'password = abc #def' is the password 'abc #def', never
    silently cut to 'abc'."""
    assert config.parse("[xapi]\n" + line).xapi.password == value


def test_an_inline_comment_after_a_checked_value_is_refused():
    with pytest.raises(ConfigError) as info:
        config.parse(GW + "nat = no  # the blog's 'pxe' network needs no NAT\n")
    assert """nat "no  # the blog's 'pxe' network needs no NAT" is not a boolean""" in \
        info.value.message


@pytest.mark.parametrize("url,ok", [
    ("none", True), ("unix:/var/lib/xcp/xapi", True), ("https://10.0.0.5", True),
    ("unix:/tmp/my_sock", False), ("ftp://x", False), ("/var/lib/xcp/xapi", False),
])
def test_xapi_url(url, ok):
    text = "[xapi]\nurl = %s\n" % url
    if ok:
        assert config.parse(text).xapi.url == url
    else:
        with pytest.raises(ConfigError) as info:
            config.parse(text)
        assert "[xapi]" in info.value.message and "url" in info.value.message


def test_xapi_defaults_to_dom0s_local_socket():
    assert config.parse("").xapi == config.defaults().xapi
    assert config.defaults().xapi.url == "unix:/var/lib/xcp/xapi"


# ---- [api] -------------------------------------------------------------------------------

@pytest.mark.parametrize("text,fragment", [
    ("[api]\nlisten = 0.0.0.0:8443\n", "needs tls_cert and tls_key"),
    ("[api]\nlisten = 8443\n", "HOST:PORT"),
    ("[api]\nlisten = 0.0.0.0:70000\n", "HOST:PORT"),
    ("[api]\ninsecure = yes\n", config.INSECURE_WORDS),
    ("[api]\nmax_body = 10\n", "from 1024"),
    ("[api]\ntokens = relative/path\n", "tokens"),
    ("[api]\nport = 1\n", "unknown key 'port'"),
])
def test_api_invalid(text, fragment):
    with pytest.raises(ConfigError) as info:
        config.parse(text)
    assert fragment in info.value.message and "[api]" in info.value.message


def test_api_defaults_and_tcp():
    assert config.parse("").api == config.defaults().api
    assert config.defaults().api.listen == "" and config.defaults().api.insecure is False
    api = config.parse("[api]\nlisten = 0.0.0.0:8443\ntls_cert = /etc/xensource/xapi-ssl.pem"
                       "\ntls_key = /etc/xensource/xapi-ssl.pem\n").api
    assert api.listen == "0.0.0.0:8443" and api.tls_key == "/etc/xensource/xapi-ssl.pem"
    api = config.parse("[api]\nlisten = 127.0.0.1:8080\ninsecure = %s\n"
                       % config.INSECURE_WORDS).api
    assert api.insecure is True


def test_inbound_in_the_config_file():
    from agent.core import config as C
    from agent.errors import ConfigError
    good = "[gateway:lab]\nbridge = xapi1\naddress = 172.16.1.1/24\ninbound = 192.0.2.0/24\n"
    assert [str(n) for n in C.parse(good).gateways["lab"].inbound] == ["192.0.2.0/24"]
    with pytest.raises(ConfigError) as info:
        C.parse(good.replace("192.0.2.0/24", "172.16.0.0/16"))
    assert "[gateway:lab]" in str(info.value) and "overlaps the gateway's own subnet" in \
        str(info.value)
    assert info.value.details["key"] == "inbound"


def test_a_reload_keeps_what_needs_a_restart_and_names_it():
    running = config.parse("[agent]\nruntime_dir = /tmp/r\ncheck_interval = 60\n"
                           "[xapi]\npassword = old\n" + GW)
    new = config.parse("[agent]\ncheck_interval = 1\nlog_level = debug\n"
                       "[xapi]\npassword = new\n")
    merged, restart = config.reloaded(running, new)
    assert merged.gateways == {}  # gateways are live
    assert (merged.agent.check_interval, merged.agent.log_level) == (1.0, "debug")
    assert merged.agent.runtime_dir == "/tmp/r" and merged.xapi.password == "old"
    assert restart == ["[agent] runtime_dir (/tmp/r -> /run/xapi-gateway)",
                       "[xapi] password ((hidden) -> (hidden))"]
    assert config.reloaded(running, running) == (running, [])
