"""The agent's configuration: one declarative schema, parsed from an INI file.

Every option is declared once in SCHEMA (type, default, help); parsing, defaults, error
messages and the documented reference (``xapi-gateway-agent --help-config``) all come from
it. A file with any error is refused whole: the daemon keeps its last good configuration.

    [agent]
    check_interval = 10

    [gateway:private]
    bridge = xapi1
    address = 172.16.1.1/24
    nat = yes
    forwards = tcp:8080=172.16.1.10:80
"""
import configparser
import io
import os
from collections import OrderedDict, namedtuple

from agent.core import conflicts, model
from agent.errors import ConfigError, GatewayInvalid

DEFAULT_PATH = "/etc/xapi-gateway/agent.conf"
GATEWAY_PREFIX = "gateway:"

class Option(namedtuple("Option", "parse default help live")):
    """One key: its parser, default (None: required) and help; ``live``: a SIGHUP applies
    a change of it (otherwise the daemon keeps the running value until a restart)."""

    __slots__ = ()


Option.__new__.__defaults__ = (False,)


def _float_range(lo, hi):
    def parse(value, field):
        try:
            number = float(value)
        except ValueError:
            raise GatewayInvalid("%s %r is not a number" % (field, value), field=field)
        if not lo <= number <= hi:
            raise GatewayInvalid("%s %r is out of range: %s to %s" % (field, value, lo, hi),
                                 field=field)
        return number
    return parse


def _choice(*choices):
    def parse(value, field):
        value = value.strip().lower()
        if value not in choices:
            raise GatewayInvalid("%s %r is not one of: %s" % (field, value, ", ".join(choices)),
                                 field=field)
        return value
    return parse


def _abspath(value, field):
    value = value.strip()
    if not value.startswith("/"):
        raise GatewayInvalid("%s %r must be an absolute path" % (field, value), field=field)
    return value


def _bool(value, field):
    return model.parse_bool(value, field)


AGENT_SCHEMA = OrderedDict([
    ("check_interval", Option(_float_range(0.5, 3600), 10.0,
                              "Seconds between periodic drift checks of iptables and "
                              "ip_forward (addresses and routes are watched by netlink).",
                              live=True)),
    ("resync_interval", Option(_float_range(10, 86400), 300.0,
                               "Seconds between full re-reads of links, addresses and routes "
                               "(a safety net behind the netlink events).", live=True)),
    ("state_dir", Option(_abspath, "/var/lib/xapi-gateway",
                         "Where the daemon records what it added, so it can remove exactly that.")),
    ("runtime_dir", Option(_abspath, "/run/xapi-gateway",
                           "Where the daemon publishes its status (status.json).")),
    ("xtables_lock", Option(_abspath, "/run/xtables.lock",
                            "The lock file iptables uses; held around every read-modify-commit.")),
    ("xtables_wait", Option(_float_range(0.1, 300), 10.0,
                            "Seconds a round waits for the xtables lock (three tries) before "
                            "it fails; a failed round is retried with backoff.")),
    ("udev", Option(_choice("auto", "udev", "kernel", "off"), "auto",
                    "Bridge events: 'udev' (tagged by the hooks/ rule), 'kernel' uevents, "
                    "'auto' (udev when udevd runs, else kernel) or 'off' (netlink only).")),
    ("log_level", Option(_choice("debug", "info", "warning", "error"), "info",
                         "Log verbosity.", live=True)),
    ("network_conf", Option(_abspath, "/etc/xensource/network.conf",
                            "Where Dom0 names its network backend: 'bridge' is Linux "
                            "bridges; 'openvswitch', 'vswitch', anything else or no file is "
                            "Open vSwitch (`xgw doctor` reports it).")),
    ("ovsdb", Option(lambda v, f: parse_ovsdb(v, f), "unix:/var/run/openvswitch/db.sock",
                     "Open vSwitch's database, unix:/PATH (Dom0's local socket). The daemon "
                     "only reads it: `xgw doctor` checks that it answers when the host's "
                     "network backend is openvswitch.")),
])


def parse_ovsdb(value, field="ovsdb"):
    """An OVSDB remote: ``unix:/ABSOLUTE/PATH`` (what Dom0 and a private OVS offer)."""
    value = value.strip()
    if not value.startswith("unix:/") or value == "unix:/":
        raise GatewayInvalid("%s %r is not unix:/PATH (e.g. unix:/var/run/openvswitch/db.sock)"
                             % (field, value), field=field)
    return value

def _xapi_url(value, field):
    value = value.strip()
    if value == "none" or value.startswith(("http://", "https://")):
        return value
    if value.startswith("unix:/"):
        if "_" in value:
            raise GatewayInvalid("%s %r: the XenAPI SDK cannot reach a socket path with '_'"
                                 % (field, value), field=field)
        return value
    raise GatewayInvalid("%s %r is not 'none', unix:/PATH or an http(s):// URL"
                         % (field, value), field=field)


XAPI_SCHEMA = OrderedDict([
    ("url", Option(_xapi_url, "unix:/var/lib/xcp/xapi",
                   "Where XAPI is: unix:/PATH (Dom0's local socket, any credentials work "
                   "there as root), http(s)://HOST, or 'none' for config-file gateways only.")),
    ("username", Option(lambda v, f: v.strip(), "root", "XAPI user (for http(s) URLs).")),
    ("password", Option(lambda v, f: v, "", "XAPI password (for http(s) URLs); keep this "
                                            "file root-only when set.")),
    ("timeout", Option(_float_range(0.5, 600), 10.0,
                       "Seconds XAPI may take to answer one call before the API answers "
                       "503 xapi_timeout and /v1/health shows XAPI stalled.")),
    ("long_timeout", Option(_float_range(1, 7200), 600.0,
                            "Seconds for the calls that wait for a guest or storage "
                            "(VM start/shutdown/clone, disk creation, VLAN creation).")),
    ("host", Option(model.parse_host, "",
                    "This host in the pool (uuid or name_label), for placement; empty: "
                    "INSTALLATION_UUID from the inventory file, as on Dom0.")),
    ("inventory", Option(_abspath, "/etc/xensource-inventory",
                         "Dom0's inventory file, where INSTALLATION_UUID names this host.")),
    ("heartbeat_port", Option(lambda v, f: _int_range(0, 65535)(v, f), 7968,
                              "UDP port of the pool heartbeats, sent to and heard on the "
                              "hosts' management addresses (README, Pools: open it in "
                              "Dom0's firewall); 0: no heartbeats (a host that simply dies "
                              "is then noticed only when XAPI marks it dead).")),
    ("heartbeat_interval", Option(_float_range(0.05, 10), 0.2,
                                  "Seconds between two heartbeats to each pool member.")),
    ("hold_time", Option(_float_range(0.1, 600), 1.0,
                         "Seconds without a heartbeat before a pool member counts as down "
                         "(more than heartbeat_interval).")),
    ("hold_down", Option(_float_range(0, 3600), 5.0,
                         "Seconds of steady heartbeats before a member that was down counts "
                         "as up again (against flapping).")),
    ("pool_secret", Option(_abspath, "/etc/xensource/ptoken",
                           "The pool secret every pool member has (root-only); the key that "
                           "authenticates heartbeats is derived from it.")),
])

INSECURE_WORDS = "plain-http-without-tokens-anyone-who-reaches-the-port-controls-this-host"


def _listen(value, field):
    value = value.strip()
    if not value:
        return ""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise GatewayInvalid("%s %r: write HOST:PORT, e.g. 0.0.0.0:8443" % (field, value),
                             field=field)
    return "%s:%s" % (host.strip("[]"), port)


def _optional_path(value, field):
    return _abspath(value, field) if value.strip() else ""


def _insecure(value, field):
    value = value.strip()
    if value in ("no", INSECURE_WORDS):
        return value == INSECURE_WORDS
    raise GatewayInvalid("%s: the API on TCP needs TLS and tokens; to serve plain HTTP "
                         "with no tokens anyway, write exactly: insecure = %s"
                         % (field, INSECURE_WORDS), field=field)


def _int_range(lo, hi):
    def parse(value, field):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
        if number is None or not lo <= number <= hi:
            raise GatewayInvalid("%s %r must be a whole number from %d to %d"
                                 % (field, value, lo, hi), field=field)
        return number
    return parse


API_SCHEMA = OrderedDict([
    ("socket", Option(_optional_path, "", "The API's Unix socket: root only, no token "
                                          "needed (xgw uses it). Empty: "
                                          "RUNTIME_DIR/api.sock.")),
    ("listen", Option(_listen, "", "HOST:PORT to serve the API on TCP as well, e.g. "
                                   "0.0.0.0:8443 (empty: Unix socket only). Needs tls_cert, "
                                   "tls_key and a token file.")),
    ("tls_cert", Option(_optional_path, "", "PEM certificate for TCP, e.g. the host's XAPI "
                                            "certificate /etc/xensource/xapi-ssl.pem.")),
    ("tls_key", Option(_optional_path, "", "PEM private key for TCP (may be the same file "
                                           "as tls_cert).")),
    ("tokens", Option(_abspath, "/etc/xapi-gateway/tokens",
                      "Root-only token file: lines '<read|admin> <token> [label]'.")),
    ("insecure", Option(_insecure, False, "'no', or the words %s to serve TCP without TLS "
                                          "and tokens (a lab behind its own firewall only)."
                                          % INSECURE_WORDS)),
    ("max_body", Option(_int_range(1024, 64 << 20), 1 << 20,
                        "Largest request body, in bytes.")),
    ("body_timeout", Option(_float_range(1, 600), 30.0,
                            "Seconds a client may take to send its request body.")),
    ("max_connections", Option(_int_range(4, 4096), 128,
                               "Open connections at most, per listener (Unix socket, TCP); "
                               "more are closed at once. Lowered at start when the "
                               "descriptor limit is too small for it.")),
    ("max_connections_per_peer", Option(_int_range(1, 4096), 16,
                                        "Open TCP connections at most from one address.")),
    ("header_timeout", Option(_float_range(1, 600), 10.0,
                              "Seconds from connecting (TLS handshake included) to a "
                              "complete request head; then the connection is closed.")),
    ("idle_timeout", Option(_float_range(1, 3600), 60.0,
                            "Seconds a connection may stay idle between requests, or take "
                            "for the next request's head.")),
])

GATEWAY_SCHEMA = OrderedDict([
    ("bridge", Option(model.parse_bridge, None, "Dom0 bridge of the network, e.g. xapi1.")),
    ("address", Option(model.parse_address, None,
                       "Gateway address with prefix, e.g. 172.16.1.1/24; the subnet is derived.")),
    ("nat", Option(_bool, True, "Masquerade traffic from the subnet going elsewhere.")),
    ("forwards", Option(model.parse_forwards, (),
                        "Port forwards from the host's own addresses to hosts of the subnet: "
                        "PROTO:PORT=ADDRESS:PORT[,...], e.g. tcp:8080=172.16.1.10:80,"
                        "udp:5353=172.16.1.11:53 (tcp or udp; not tcp 22, 80 or 443, "
                        "Dom0's own). A (proto, port) belongs to one gateway.")),
    ("public", Option(_bool, False,
                      "Allow a subnet outside the private (RFC 1918) and shared "
                      "(RFC 6598) ranges, which may be routed on the internet.")),
    ("inbound", Option(model.parse_inbound, (),
                       "Outside networks allowed to open connections into the subnet, "
                       "routed through the host and not NATed (the VMs see the client's "
                       "address): CIDRs, e.g. 192.0.2.0/24,198.51.100.7/32, or 'any' for "
                       "the whole Internet. Everyone else still meets Dom0's firewall.")),
    ("host", Option(model.parse_host, "",
                    "In a pool: the host (uuid or name_label) that serves this gateway while "
                    "it is live and enabled; empty: the placement rule chooses (README, "
                    "Pools).")),
])


class AgentSettings(namedtuple("AgentSettings", list(AGENT_SCHEMA))):
    __slots__ = ()


class XapiSettings(namedtuple("XapiSettings", list(XAPI_SCHEMA))):
    __slots__ = ()


class ApiSettings(namedtuple("ApiSettings", list(API_SCHEMA))):
    __slots__ = ()


class Config(namedtuple("Config", "path agent gateways xapi api")):
    """A parsed configuration: ``agent``, ``xapi`` and ``api`` settings, ``gateways``
    (name -> Gateway)."""

    __slots__ = ()


def api_socket(config):
    """Where the API's Unix socket is: [api] socket, else in the runtime directory."""
    return config.api.socket or os.path.join(config.agent.runtime_dir, "api.sock")


def defaults():
    return Config(path=None, agent=AgentSettings(**{k: o.default for k, o in AGENT_SCHEMA.items()}),
                  gateways=OrderedDict(),
                  xapi=XapiSettings(**{k: o.default for k, o in XAPI_SCHEMA.items()}),
                  api=ApiSettings(**{k: o.default for k, o in API_SCHEMA.items()}))


def load(path):
    """Read and validate ``path``; raises ConfigError on any problem."""
    try:
        with io.open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except (IOError, OSError) as exc:
        raise ConfigError("cannot read config %s: %s" % (path, exc.strerror or exc), path=path)
    except UnicodeDecodeError as exc:
        raise ConfigError("config %s is not UTF-8: %s" % (path, exc), path=path)
    return parse(text, path)


def parse(text, path="<string>"):
    # Comments are whole lines starting with '#' or ';'; a '#' after a value is part of
    # it (a password may hold one), so 'address = 172.16.1.1/24 # lab' is refused, not cut.
    parser = configparser.ConfigParser(interpolation=None, strict=True,
                                       default_section="\0no-defaults",
                                       comment_prefixes=("#", ";"),
                                       inline_comment_prefixes=None)
    parser.optionxform = str  # keys are case-sensitive; 'Bridge' is a typo, not 'bridge'
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        where = {k: v for k, v in (("section", getattr(exc, "section", None)),
                                   ("key", getattr(exc, "option", None))) if v is not None}
        raise ConfigError("config %s: %s" % (path, _one_line(exc)), path=path, **where)

    agent_values = {k: o.default for k, o in AGENT_SCHEMA.items()}
    xapi_values = {k: o.default for k, o in XAPI_SCHEMA.items()}
    api_values = {k: o.default for k, o in API_SCHEMA.items()}
    gateways = OrderedDict()
    bridges = {}
    claims = conflicts.Claims()  # subnets and ports of the file's gateways so far
    for section in parser.sections():
        items = parser.items(section)
        if section == "agent":
            agent_values.update(_parse_section(path, section, items, AGENT_SCHEMA))
        elif section == "xapi":
            xapi_values.update(_parse_section(path, section, items, XAPI_SCHEMA))
        elif section == "api":
            api_values.update(_parse_section(path, section, items, API_SCHEMA))
        elif section.startswith(GATEWAY_PREFIX):
            name = section[len(GATEWAY_PREFIX):].strip()
            values = _parse_section(path, section, items, GATEWAY_SCHEMA)
            try:
                name = model.parse_name(name, "gateway name")
            except GatewayInvalid as exc:
                raise ConfigError("config %s [%s]: %s" % (path, section, exc), path=path,
                                  section=section)
            if name in gateways:
                raise ConfigError("config %s [%s]: gateway %s is already defined"
                                  % (path, section, name), path=path, section=section)
            if values["bridge"] in bridges:
                raise ConfigError("config %s [%s]: bridge %s is already used by [%s%s]"
                                  % (path, section, values["bridge"], GATEWAY_PREFIX,
                                     bridges[values["bridge"]]),
                                  path=path, section=section, key="bridge")
            try:  # the values together: subnet range, forwards in the subnet
                values["forwards"] = model.check_gateway(values["address"],
                                                         values["forwards"], values["public"],
                                                         inbound=values["inbound"])
            except GatewayInvalid as exc:
                raise ConfigError("config %s [%s]: %s" % (path, section, exc), path=path,
                                  section=section, key=exc.details.get("field"))
            clash = claims.conflict(values["address"].network, values["forwards"])
            if clash is not None:  # what the daemon would refuse the gateway for
                raise ConfigError("config %s [%s]: %s" % (path, section, clash.reason),
                                  path=path, section=section,
                                  key="address" if clash.index is None else "forwards")
            claims.add(name, values["address"].network, values["forwards"])
            bridges[values["bridge"]] = name
            gateways[name] = model.Gateway(name=name, source="config", **values)
        else:
            raise ConfigError("config %s: unknown section [%s]; expected [agent], [xapi], "
                              "[api] or [gateway:NAME]" % (path, section), path=path,
                              section=section)
    if xapi_values["hold_time"] <= xapi_values["heartbeat_interval"]:
        raise ConfigError("config %s [xapi]: hold_time %s must be longer than "
                          "heartbeat_interval %s (a member would count as down between two "
                          "heartbeats)" % (path, xapi_values["hold_time"],
                                           xapi_values["heartbeat_interval"]),
                          path=path, section="xapi", key="hold_time")
    if api_values["listen"] and not api_values["insecure"] and not (
            api_values["tls_cert"] and api_values["tls_key"]):
        raise ConfigError("config %s [api]: listen = %s needs tls_cert and tls_key (the "
                          "host's XAPI certificate /etc/xensource/xapi-ssl.pem holds both)"
                          % (path, api_values["listen"]), path=path, section="api",
                          key="listen")
    return Config(path=path, agent=AgentSettings(**agent_values), gateways=gateways,
                  xapi=XapiSettings(**xapi_values), api=ApiSettings(**api_values))


def _parse_section(path, section, items, schema):
    values = {}
    for key, raw in items:
        option = schema.get(key)
        if option is None:
            raise ConfigError("config %s [%s]: unknown key %r; known keys: %s"
                              % (path, section, key, ", ".join(schema)),
                              path=path, section=section, key=key)
        try:
            values[key] = option.parse(raw, key)
        except GatewayInvalid as exc:
            raise ConfigError("config %s [%s]: %s" % (path, section, exc),
                              path=path, section=section, key=key)
    for key, option in schema.items():
        if key not in values:
            if option.default is None:
                raise ConfigError("config %s [%s]: missing required key %r (%s)"
                                  % (path, section, key, option.help),
                                  path=path, section=section, key=key)
            values[key] = option.default
    return values


def reloaded(running, new):
    """What a reload runs with: ``new``'s gateways and live options, the running value of
    every other option. Returns (config, [what changed but needs a restart, as
    "[section] key (running -> new)"])."""
    restart = []
    sections = {}
    for section, schema in (("agent", AGENT_SCHEMA), ("xapi", XAPI_SCHEMA),
                            ("api", API_SCHEMA)):
        old, wanted = getattr(running, section), getattr(new, section)
        values = {}
        for key, option in schema.items():
            before, after = getattr(old, key), getattr(wanted, key)
            values[key] = after if option.live else before
            if before != after and not option.live:
                shown = ("(hidden)", "(hidden)") if key == "password" else (before, after)
                restart.append("[%s] %s (%s -> %s)" % ((section, key) + tuple(
                    '""' if v == "" else v for v in shown)))
        sections[section] = type(old)(**values)
    return new._replace(**sections), restart


def reference():
    """The configuration reference as text, generated from the schema."""
    lines = ["[agent]"]
    for key, opt in AGENT_SCHEMA.items():
        lines.append("%-16s default %-24s %s%s" % (key, opt.default, opt.help, (
            " A SIGHUP applies a change." if opt.live else
            " A change needs a restart.")))
    lines.append("")
    lines.append("[xapi] and [api]: a change needs a restart.")
    lines.append("")
    lines.append("[xapi]")
    for key, opt in XAPI_SCHEMA.items():
        lines.append("%-16s default %-24s %s" % (key, opt.default or '""', opt.help))
    lines.append("")
    lines.append("[api]")
    for key, opt in API_SCHEMA.items():
        default = "no" if opt.default is False else (opt.default or '""')
        lines.append("%-16s default %-24s %s" % (key, default, opt.help))
    lines.append("")
    lines.append("[gateway:NAME]   (one section per gateway; a SIGHUP applies changes)")
    for key, opt in GATEWAY_SCHEMA.items():
        default = "(required)" if opt.default is None else "no" if opt.default is False \
            else "(none)" if opt.default == () else opt.default or '""'
        lines.append("%-16s default %-24s %s" % (key, default, opt.help))
    return "\n".join(lines)


def _one_line(exc):
    return " ".join(str(exc).split())
