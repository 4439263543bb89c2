#!/usr/bin/env python3
"""How fast the daemon makes and repairs a VLAN link on real Open vSwitch.

    sudo .venv/bin/python bench/link_repair.py [--repeat 30]

A namespace of its own (xgwt-<pid>-...-dom0, named as the tests name theirs) with a private ovsdb-server + ovs-vswitchd (userspace
datapath), the XAPI simulator making the bridges there, and the daemon following XAPI
with a periodic check 300 s away, so that only OVSDB's events can explain a repair.
Networks 'private' and 'br100' with a VM each, started; then:

  declare  other_config xapi-gateway.link set through the XenAPI SDK -> both patch ports
           in OVSDB (the daemon's XAPI event, round, one OVSDB transaction);
  repair   the parent's patch port deleted with ovs-vsctl, --repeat times -> a new one in
           OVSDB (OVSDB's event, a round, one transaction), timed from before ovs-vsctl
           is spawned; also the tag changed (an altered port) -> the tag back;
  drop     the key removed -> both ports gone.

Times are taken by a second OVSDB client of this script's own (the library's IDL, polled
every millisecond), from just before the change is sent. Everything is removed at the end.
"""
from __future__ import print_function

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, REPO)

from agent.adapters import ovsdb  # noqa: E402
from agent.core import ports  # noqa: E402
from agent.xapisim import ovs as ovsmod  # noqa: E402
from tests.integration import netns as N  # noqa: E402

LINK_KEY = "xapi-gateway.link"


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100.0 * (len(ordered) - 1))))]


def until(predicate, timeout=10.0):
    """Seconds until ``predicate()`` holds, polled every millisecond; None on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.001)
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=30, help="repairs measured (30)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("link_repair.py: needs root (network namespaces)")
    if ovsmod.installed():
        sys.exit("link_repair.py: %s" % ovsmod.installed())
    import XenAPI
    from agent.service.networks import Networks
    from agent.service.vms import Vms

    dom0 = N.Netns("dom0")
    switch = sim = daemon = watcher = None
    work = tempfile.mkdtemp(prefix="xgwb-link-")
    sockdir = "/tmp/xgwb-%d-sim" % os.getpid()   # no '_' for the SDK's socket URLs
    try:
        switch = ovsmod.Ovs.start(dom0.name)
        os.makedirs(sockdir)
        path = os.path.join(sockdir, "xapi")
        sim = dom0.popen([sys.executable, "-m", "agent.xapisim", "--unix", path, "--bridges",
                          "--network-backend", "openvswitch", "--ovsdb", switch.remote],
                         stdout=subprocess.PIPE, universal_newlines=True,
                         env=dict(os.environ, PYTHONPATH=REPO))
        assert sim.stdout.readline().startswith("xapisim: serving")
        conf = os.path.join(work, "network.conf")
        with open(conf, "w") as f:
            f.write("openvswitch\n")
        daemon = N.Daemon(dom0, work, {}, xapi_url="unix:" + path,
                          agent_opts={"ovsdb": switch.remote, "network_conf": conf,
                                      "check_interval": "300", "log_level": "info"})
        daemon.start(timeout=60)
        session = XenAPI.Session("http://%s/" % path.replace("/", "_"),
                                 transport=XenAPI.UDSTransport())
        session.xenapi.login_with_password("root", "", "1.0", "bench")
        x = session.xenapi
        private, br100 = Networks(x).create("private"), Networks(x).create("br100")
        vms = Vms(x)
        for name, net in (("web", "br100"), ("db", "private")):
            vms.create(name, nics=[net])
            vms.start(name)
        for bridge in (private["bridge"], br100["bridge"]):
            N.wait_for(lambda: dom0.link_exists(bridge), timeout=20, message=bridge)
        child_port, parent_port = ports.link_port_names(br100["uuid"])
        watcher = ovsdb.Ovsdb(switch.remote).start()
        assert watcher.wait_connected(10), watcher.reason

        def present():
            return watcher.own_ports(ports.LINK)

        ref = x.network.get_by_uuid(br100["uuid"])
        started = time.monotonic()
        x.network.add_to_other_config(ref, LINK_KEY, "%s:102" % private["uuid"])
        declared = until(lambda: len(present()) == 2, 20)
        declare_s = None if declared is None else time.monotonic() - started
        repairs, retags, vsctl = [], [], []
        for _ in range(args.repeat):
            before = port_uuid(watcher, parent_port)
            t0 = time.monotonic()
            switch.vsctl("--no-wait", "del-port", parent_port)
            vsctl.append(time.monotonic() - t0)
            # from before ovs-vsctl was spawned until a new port of that name exists
            took = until(lambda: port_uuid(watcher, parent_port) not in (None, before))
            repairs.append(None if took is None else time.monotonic() - t0)
            time.sleep(0.05)
        unseen = 0   # repaired before this script's own replica even showed tag 103
        for _ in range(max(5, args.repeat // 3)):
            t0 = time.monotonic()
            switch.vsctl("--no-wait", "set", "Port", parent_port, "tag=103")
            if until(lambda: port_tag(watcher, parent_port) == 103, 0.2) is None:
                unseen += 1
                continue
            took = until(lambda: port_tag(watcher, parent_port) == 102)
            retags.append(None if took is None else time.monotonic() - t0)
            time.sleep(0.05)
        started = time.monotonic()
        x.network.remove_from_other_config(ref, LINK_KEY)
        dropped = until(lambda: not present(), 20)
        rounds = (daemon.status() or {}).get("rounds")

        ok = [r for r in repairs if r is not None]
        print("xapi-gateway link repair on real Open vSwitch (userspace datapath), %s, "
              "load %.2f" % (time.strftime("%Y-%m-%d %H:%M"), os.getloadavg()[0]))
        print("  link declared in XAPI -> both patch ports in OVSDB: %s" % ms(declare_s))
        print("  parent's patch port deleted -> back (n=%d, %d missed): p50 %s, p90 %s, "
              "max %s" % (len(repairs), len(repairs) - len(ok), ms(percentile(ok, 50)),
                          ms(percentile(ok, 90)), ms(max(ok))))
        print("    (from before `ovs-vsctl --no-wait del-port` was spawned; that command "
              "alone: p50 %s)" % ms(percentile(vsctl, 50)))
        ok_tags = [r for r in retags if r is not None]
        print("  parent's tag changed to 103 -> 102 again (n=%d, %d missed): p50 %s, max %s "
              "(and %d more back before this script saw 103)"
              % (len(retags), len(retags) - len(ok_tags),
                 ms(percentile(ok_tags, 50)) if ok_tags else "-",
                 ms(max(ok_tags)) if ok_tags else "-", unseen))
        final = port_tag(watcher, parent_port)
        print("  link dropped in XAPI -> both ports gone: %s" % ms(dropped))
        print("  (periodic check: 300 s; the daemon's rounds in all: %s)" % rounds)
        return 0 if len(ok) == len(repairs) and len(ok_tags) == len(retags) and \
            final == 102 else 1
    finally:
        if watcher is not None:
            watcher.stop()
        if daemon is not None and daemon.proc is not None:
            daemon.stop()
        if sim is not None:
            N.stop(sim)
        if switch is not None:
            switch.stop()
        dom0.delete()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(sockdir, ignore_errors=True)


def _port(idl, name):
    for row in idl.tables["Port"].rows.values():
        if row.name == name:
            return row
    return None


def port_uuid(watcher, name):
    """The uuid of port ``name`` in the watcher's replica, or None."""
    return watcher.call(lambda idl: getattr(_port(idl, name), "uuid", None))


def port_tag(watcher, name):
    def job(idl):
        row = _port(idl, name)
        return (row.tag[0] if row.tag else None) if row is not None else None
    return watcher.call(job)


def ms(seconds):
    return "-" if seconds is None else "%.1f ms" % (seconds * 1000.0)


if __name__ == "__main__":
    sys.exit(main())
