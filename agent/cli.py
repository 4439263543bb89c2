"""xgw: the command line of xapi-gateway.

Local commands (status, doctor, check-config, cleanup) read the daemon's files and the
kernel directly, so they work while the daemon is down; networks, vms and gateways go
through the daemon's API (agent/cli_remote.py), locally or on a remote host.
"""
import argparse
import json
import os
import sys

import agent
from agent import cli_remote
from agent.core import config as configmod
from agent.errors import AgentError, ConfigError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3


def build_parser():
    parser = argparse.ArgumentParser(prog="xgw", description="Drive xapi-gateway.")
    parser.add_argument("--version", action="version", version="%(prog)s " + agent.__version__)
    parser.add_argument("-c", "--config", default=configmod.DEFAULT_PATH,
                        help="agent configuration (default: %(default)s)")
    cli_remote.add_arguments(parser)
    sub = parser.add_subparsers(dest="command")
    status = sub.add_parser("status", help="gateways and links and their state, as the "
                                          "daemon last saw them")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("check-config", help="validate the agent configuration")
    doctor = sub.add_parser("doctor", help="is this host ready? XAPI, storage, firewall path, "
                                           "forwarding (run as root)")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    clean = sub.add_parser("cleanup", help="remove everything the daemon added (stop it first)")
    clean.add_argument("--force", action="store_true",
                       help="clean up even though the daemon looks alive")
    cli_remote.add_commands(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from agent.daemon.main import load_config
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print("xgw: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    if args.command == "check-config":
        print("config %s is valid: %d gateway(s)" % (config.path or "(defaults)",
                                                     len(config.gateways)))
        return EXIT_OK
    if args.command == "doctor":
        return _doctor(config, args.json)
    if args.command in cli_remote.COMMANDS:
        return cli_remote.run(args, config)
    status_path = os.path.join(config.agent.runtime_dir, "status.json")
    if args.command == "status":
        return _status(status_path, args.json)
    if args.command == "cleanup":
        status = _read_status(status_path)
        if status and _alive(status.get("pid")) and not args.force:
            print("xgw: the daemon (pid %s) is running and would put everything back; stop it "
                  "first (systemctl stop xapi-gateway) or pass --force" % status["pid"],
                  file=sys.stderr)
            return EXIT_FAILURE
        from agent.daemon.cleanup import cleanup, describe
        try:
            print(describe(cleanup(config.agent)))
        except AgentError as exc:
            print("xgw: clean-up failed: %s" % exc, file=sys.stderr)
            return EXIT_FAILURE
        return EXIT_OK
    return EXIT_USAGE


def _status(path, as_json):
    status = _read_status(path)
    if status is None:
        print("xgw: no status at %s: is xapi-gateway-agent running?" % path, file=sys.stderr)
        return EXIT_UNAVAILABLE
    if as_json:
        print(json.dumps(status, indent=1))
        return EXIT_OK
    alive = _alive(status.get("pid"))
    print("daemon pid %s (%s), %s" % (status.get("pid"), "running" if alive else "NOT running",
                                       status.get("summary")))
    xapi = status.get("xapi")
    if xapi:
        print("XAPI %s: %s" % (xapi["url"], "connected" if xapi["connected"] else
                                "NOT connected (%s); enforcing the last known gateways"
                                % xapi.get("reason")))
    from agent.service import doctor
    for problem in doctor.problems(status):
        print("PROBLEM: %s" % problem)
    cli_remote.gateway_table(status.get("gateways", []))
    if status.get("links"):
        print()
        cli_remote.link_table(status["links"])
    if status.get("tunnels"):
        print()
        cli_remote.tunnel_table(status["tunnels"])
    return EXIT_OK if alive else EXIT_UNAVAILABLE


def _doctor(config, as_json):
    from agent.service import doctor
    checks = []
    if config.xapi.url == "none":
        checks.append(doctor.Check("xapi", doctor.WARN, "XAPI not configured ([xapi] url = "
                                                        "none): config-file gateways only"))
    else:
        from agent.adapters.xapi import open_session
        try:
            session = open_session(config.xapi.url, config.xapi.username, config.xapi.password)
            checks.extend(doctor.xapi_checks(session.xenapi))
        except Exception as exc:  # noqa: B902 - any failure to reach XAPI is the finding
            checks.append(doctor.Check("xapi", doctor.FAIL, "XAPI at %s unreachable: %s"
                                       % (config.xapi.url, exc)))
    try:
        from agent.adapters.iptables import Iptables
        from agent.adapters.sysctl import Sysctl
        checks.extend(doctor.kernel_checks(Iptables(), Sysctl()))
    except (AgentError, OSError, ImportError) as exc:
        checks.append(doctor.Check("kernel", doctor.FAIL, "cannot read iptables/sysctl "
                                   "(%s); run as root" % exc))
    from agent.adapters import ovsdb
    checks.extend(doctor.network_checks(*ovsdb.network_backend(config.agent.network_conf),
                                        remote=config.agent.ovsdb, list_dbs=ovsdb.list_dbs))
    status = _read_status(os.path.join(config.agent.runtime_dir, "status.json"))
    if status and _alive(status.get("pid")):  # the running daemon's own findings
        checks.extend(doctor.daemon_checks(status))
    if as_json:
        print(json.dumps({"result": doctor.worst(checks),
                          "checks": [c._asdict() for c in checks]}, indent=1))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            print("%-4s  %s  %s" % (c.status.upper(), c.name.ljust(width), c.detail))
    return EXIT_FAILURE if doctor.worst(checks) == doctor.FAIL else EXIT_OK


def _read_status(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (IOError, OSError, ValueError):
        return None


def _alive(pid):
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
