"""Run the XAPI simulator: ``python -m agent.xapisim [--listen HOST:PORT] [--unix PATH]``.

It serves XML-RPC as xapi does, on TCP and/or a Unix socket, seeded with a host and a
pool, until interrupted. Credentials are accepted as xapi accepts them on its Unix socket
(any); ``--password`` makes TCP logins check root's password. ``--bridges`` makes private
networks' bridges for real on ``--network-backend`` (openvswitch by default, as on Dom0,
or bridge); see agent/xapisim/bridges.py.
"""
import argparse
import signal
import sys

from agent.core.config import parse_ovsdb
from agent.errors import AgentError
from agent.xapisim import datamodel as dm
from agent.xapisim import server, storage, underlay
from agent.xapisim import bridges as dom0
from agent.xapisim.engine import Engine
from agent.xapisim.ovs import OvsError
from agent.xapisim.pool import Pool


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m agent.xapisim",
                                     description="A XAPI simulator driven by the datamodel.")
    parser.add_argument("--listen", metavar="HOST:PORT", help="serve HTTP here, e.g. 127.0.0.1:8080")
    parser.add_argument("--unix", metavar="PATH", help="serve on this Unix socket (no '_' in "
                        "it if XenAPI.xapi_local-style URLs must reach it)")
    parser.add_argument("--password", help="require this password for root")
    parser.add_argument("--bridges", action="store_true",
                        help="create and remove private networks' bridges (and, on Open "
                             "vSwitch, VIF ports) for real, in the network namespace this "
                             "runs in (needs root; run it with ip netns exec NS)")
    parser.add_argument("--network-backend", choices=dom0.BACKENDS, default=dom0.BACKENDS[0],
                        help="what --bridges makes, as Dom0's /etc/xensource/network.conf "
                             "chooses: Open vSwitch bridges and VIF ports (the default, as "
                             "on XenServer 8 / XCP-ng 8.3; userspace datapath) or Linux "
                             "bridges")
    parser.add_argument("--ovsdb", metavar="unix:PATH",
                        help="with --bridges on openvswitch: the OVSDB of a running Open "
                             "vSwitch (default: start a private ovsdb-server and "
                             "ovs-vswitchd in this namespace, stopped on exit)")
    parser.add_argument("--hosts", type=int, default=1, metavar="N",
                        help="a pool of N hosts (default 1); the first is the master. With "
                             "--bridges and N > 1 each host gets a network namespace of its "
                             "own (PREFIX-h1...), with its own Open vSwitch on that backend, "
                             "and their eth0 are joined by an underlay (namespace PREFIX-ul)")
    parser.add_argument("--netns-prefix", metavar="PREFIX",
                        help="names of the pool's namespaces (default xgwsim-<pid>)")
    parser.add_argument("--underlay", metavar="CIDR", default=underlay.DEFAULT_SUBNET,
                        help="the hosts' management subnet: host n gets address n on its "
                             "xenbr0, the underlay the last one (default %(default)s)")
    parser.add_argument("--iso", action="append", metavar="NAME",
                        help="an ISO in the ISO library (repeat for more; default: %s)"
                        % ", ".join(storage.DEFAULT_ISOS))
    parser.add_argument("--datamodel", metavar="DIR", help="directory with datamodel.json "
                        "and errors.json (default: %s)" % dm.default_directory())
    args = parser.parse_args(argv)
    if not args.listen and not args.unix:
        parser.error("give --listen and/or --unix")
    if args.ovsdb is not None:
        try:
            parse_ovsdb(args.ovsdb, "--ovsdb")
        except AgentError as exc:
            parser.error(str(exc))
    if args.hosts < 1:
        parser.error("--hosts wants 1 or more, got %d" % args.hosts)
    if args.hosts > 1 and args.ovsdb is not None:
        parser.error("--ovsdb names one OVS; a pool of several hosts runs one per host")
    host = port = None
    if args.listen:
        host, _, port_text = args.listen.rpartition(":")
        if not host or not port_text.isdigit():
            parser.error("--listen wants HOST:PORT, got %r" % args.listen)
        port = int(port_text)
    try:
        model = dm.Datamodel.load(args.datamodel)
    except (IOError, OSError, ValueError) as exc:
        print("xapisim: cannot load the datamodel: %s" % exc, file=sys.stderr)
        return 2
    check = None
    if args.password is not None:
        check = lambda user, pwd: user == "root" and pwd == args.password  # noqa: E731
    engine = Engine(model, check_password=check)
    # before the signal mask below: a private OVS's daemons must not inherit it
    try:
        pool = Pool(engine, hosts=args.hosts, backend=args.network_backend, real=args.bridges,
                    ovsdb=args.ovsdb, prefix=args.netns_prefix, subnet=args.underlay,
                    isos=args.iso)
    except (OvsError, OSError, ValueError, AssertionError) as exc:
        print("xapisim: cannot start the %s backend: %s" % (args.network_backend, exc),
              file=sys.stderr)
        return 2
    # SIGINT/SIGTERM are taken with sigwait below, blocked here so that the serving
    # threads inherit the mask: setting an Event from a signal handler can deadlock on
    # the Event's own lock when the signal lands while the main thread holds it.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        servers, address = server.serve(engine, host=host, port=port or 0,
                                        unix_path=args.unix)
        described = pool.describe()
        print("xapisim: serving%s%s%s" % (
            " http://%s:%d" % address if address else "",
            " unix:%s" % args.unix if args.unix else "",
            " (%s)" % described if described else ""))
        for line in pool.host_lines():  # a pool in namespaces: where each host is
            print("xapisim: %s" % line)
        sys.stdout.flush()
        signal.sigwait(STOP_SIGNALS)
        server.shutdown(servers)
    finally:
        pool.close()  # what it made goes: bridges, private OVSes, the pool's namespaces
    return 0


if __name__ == "__main__":
    sys.exit(main())
