"""xapi-gateway-agent: wiring and lifecycle of the gateway daemon.

Start-up: read the config (refuse to start on a bad one), subscribe to netlink events,
dump links/addresses/routes, listen to udev, run the first full round, then tell systemd
READY=1. After that: rounds on events, a periodic drift check, a netlink re-read now and
then, watchdog pings while the reconciler is healthy, SIGHUP reloads (a bad file keeps the
old config), SIGTERM leaves every gateway in place and exits 0.
"""
import argparse
import asyncio
import gc
import itertools
import json
import logging
import os
import signal
import sys
import time

import agent
from agent.core import config as configmod
from agent.errors import AgentError, ConfigError

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
_STATUS_JSON = json.JSONEncoder(indent=1)   # status.json, as json.dumps(indent=1) made it


def build_parser():
    parser = argparse.ArgumentParser(
        prog="xapi-gateway-agent",
        description="Make the xapi* bridges of a XenServer / XCP-ng host NAT gateways, "
                    "and keep them so.")
    parser.add_argument("-c", "--config", default=configmod.DEFAULT_PATH,
                        help="configuration file (default: %(default)s)")
    parser.add_argument("--check-config", action="store_true",
                        help="validate the configuration, print the gateways, exit 0 if valid "
                             "(a problem that only keeps the API off TCP is a warning)")
    parser.add_argument("--cleanup", action="store_true",
                        help="remove every rule, chain and address the daemon added, then exit "
                             "(stop the service first)")
    parser.add_argument("--help-config", action="store_true",
                        help="print the configuration reference and exit")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                        help="override the configured log level")
    parser.add_argument("--version", action="version", version="%(prog)s " + agent.__version__)
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def load_config(path):
    """The config at ``path``; a missing default file means 'no gateways yet'."""
    if path == configmod.DEFAULT_PATH and not os.path.exists(path):
        return configmod.defaults()
    return configmod.load(path)



def _freeze_heap():
    """Collect once, then move what survived the start-up (modules, configuration, the
    gateways, their status) out of the collector's sight (gc.freeze, Python 3.7+).

    With 1,000-2,000 gateways a full collection walks a million objects that will live as
    long as the daemon: 30-80 ms, landing in whichever round allocated the last straw, an
    idle check included. Objects made later are collected as before. Then the pages the
    start-up freed under live objects go back to the system (agent.adapters.heap)."""
    gc.collect()
    freeze = getattr(gc, "freeze", None)   # Python 3.7+
    if freeze is not None:
        freeze()
    from agent.adapters import heap
    heap.trim()   # what the start-up freed under live objects (parsing the config...): ~2 MB

def main(argv=None):
    args = parse_args(argv)
    if args.help_config:
        print(configmod.reference())
        return EXIT_OK
    from agent.daemon import logs
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        logs.setup("info")
        log.error("%s", exc)
        print("xapi-gateway-agent: %s" % exc, file=sys.stderr)
        return EXIT_CONFIG
    logs.setup(args.log_level or config.agent.log_level)
    if args.check_config:
        problem = _check_api(config)
        if problem:  # TCP only: the unit's ExecStartPre must not stop the gateways for it
            print("xapi-gateway-agent: warning: the API will not be served on TCP %s: %s "
                  "(the Unix socket and the gateways will run)" % (config.api.listen, problem),
                  file=sys.stderr)
        print("config %s is valid: %d gateway(s)" % (config.path or "(defaults)",
                                                     len(config.gateways)))
        for gw in config.gateways.values():
            print("  %s" % gw.describe())
        for warning in _interface_warnings(config):
            print("warning: %s" % warning)
        print("API on unix:%s%s" % (configmod.api_socket(config), (
            " and %s://%s" % ("http" if config.api.insecure else "https", config.api.listen))
            if config.api.listen and not problem else ""))
        return EXIT_OK
    if args.cleanup:
        from agent.daemon.cleanup import cleanup, describe
        try:
            print(describe(cleanup(config.agent)))
        except AgentError as exc:
            log.error("clean-up failed: %s", exc)
            return EXIT_FAILURE
        return EXIT_OK
    return Daemon(args, config).run()


def _interface_warnings(config):
    """What the daemon would refuse on this host's interfaces as they are now (a bridge =
    naming lo or eth0): the planner's sentence, per gateway. A warning, not an error: the
    interfaces may change before the daemon runs, and it refuses only those gateways."""
    try:
        from agent.adapters.netlink import dump_links
        links = {link.name: link for link in dump_links()}
    except (ImportError, AgentError, OSError) as exc:
        return ["the host's interfaces could not be listed (%s); bridges not checked" % exc]
    from agent.core import planner
    warnings = []
    for gw in config.gateways.values():
        reason = planner.not_a_bridge(links.get(gw.bridge))
        if reason is not None:
            warnings.append("gateway %s will be refused: %s" % (gw.name, reason))
    return warnings


def _check_api(config):
    """What would stop the API's TCP listener (token file, TLS files), or None."""
    from agent.api import server
    try:
        server.tcp_setup(config)
    except ConfigError as exc:
        return str(exc)
    return None


class DaemonState(object):
    """What the API reads from the running daemon: the snapshot the reconciler published
    after its last round, the XAPI watch and the API's listeners. Kernel checks run on the
    kernel thread, which owns the kernel."""

    KERNEL_CHECK_TIMEOUT = 60.0

    def __init__(self, daemon):
        self.daemon = daemon

    def gateways(self):
        return [dict(gw) for gw in self.daemon.reconciler.published.gateways]

    def published_gateways(self):
        return self.daemon.reconciler.published.gateways

    def links(self):
        return [_link_view(st) for st in self.daemon.reconciler.published.links]

    def xapi(self):
        source = self.daemon.xapi
        if source is None:
            return {"configured": False, "connected": False, "reason": None}
        return {"configured": True, "connected": bool(source.connected),
                "reason": source.reason}

    def problems(self):
        from agent.service import doctor
        return doctor.problems(self.daemon.check_data())

    def metrics(self):
        xapi = self.xapi()
        return self.daemon.metrics.lines(self.daemon.reconciler.published.gateways,
                                         xapi["configured"], xapi["connected"],
                                         extra=self.daemon.api_metrics())

    def kernel_checks(self):
        """Doctor's kernel checks (asked of the kernel thread, from an API thread), the
        network backend's, and the checks of the daemon itself."""
        from concurrent.futures import TimeoutError as FutureTimeout

        from agent.adapters import ovsdb
        from agent.service import doctor
        reconciler = self.daemon.reconciler
        future = self.daemon.kernel.submit(doctor.kernel_checks, reconciler.iptables,
                                           reconciler.sysctl)
        try:
            checks = list(future.result(self.KERNEL_CHECK_TIMEOUT))
        except FutureTimeout:
            checks = [doctor.Check("kernel", doctor.FAIL, "the reconciler did not answer in "
                                   "%.0f s: a round is stuck" % self.KERNEL_CHECK_TIMEOUT)]
        except AgentError as exc:
            checks = [doctor.Check("kernel", doctor.FAIL, "cannot read iptables/sysctl: %s"
                                   % exc)]
        settings = self.daemon.config.agent
        checks += doctor.network_checks(*ovsdb.network_backend(settings.network_conf),
                                        remote=settings.ovsdb, list_dbs=ovsdb.list_dbs)
        return checks + doctor.daemon_checks(self.daemon.check_data())


def _link_view(status):
    return {k: v for k, v in status.items() if k != "since_monotonic"}


class Daemon(object):
    def __init__(self, args, config):
        self.args = args
        self.config = config
        self.exit_code = EXIT_OK
        self.loop = None
        self.engine = None
        self._stop = None
        self._status_text = None
        self._published = (None, 0.0)  # (gateway statuses, monotonic time) last written
        from agent.daemon.metrics import Metrics
        self.metrics = Metrics()
        self.api_runner = None
        self.ovsdb = None       # the OVSDB connection, on an Open vSwitch host
        self.restart_needed = []  # what the last reload could not apply (status.json)
        self.api_guard = None
        self.pool = None  # agent.daemon.pool.PoolWatch with XAPI
        self.api = {"socket": None, "listen": config.api.listen or None, "tcp_error": None}

    def run(self):
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.loop = loop
        try:
            return loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self):
        # Imported here so that --check-config and --help work without the kernel libraries.
        from agent.adapters import arp
        from agent.adapters.iptables import Iptables, XtablesLock
        from agent.adapters.netlink import Netlink, NetlinkMonitor, NetlinkView
        from agent.adapters.statefile import StateFile
        from agent.adapters.sysctl import Sysctl
        from agent.adapters.systemd import Notifier
        from agent.adapters.udev import UdevEvents
        from agent.daemon.reconciler import Engine, KernelThread, Reconciler
        from agent.daemon.sources import MergedSource, PlacedSource, StaticSource, XapiSource

        settings = self.config.agent
        loop = self.loop
        self._stop = loop.create_future()
        self.notifier = Notifier()
        executor = KernelThread()
        self.kernel = executor   # the kernel thread: rounds, and questions about the kernel
        self.started = time.time()

        def in_kernel_thread(func, *args):
            return loop.run_in_executor(executor, func, *args)

        netlink = await in_kernel_thread(Netlink)
        view = NetlinkView()

        def resync():
            view.resync(netlink.dump)

        from agent.adapters import ovsdb
        backend, _said = ovsdb.network_backend(settings.network_conf)
        self.source = StaticSource(self.config.gateways)
        self.xapi = None
        sources = [self.source]
        if self.config.xapi.url != "none":
            from agent.adapters.statefile import JsonCache
            self.xapi = XapiSource(JsonCache(os.path.join(settings.state_dir,
                                                          "xapi-networks.json")),
                                   backend=backend)
            sources.append(self.xapi)
        # status.json of a previous run in the runtime directory (a tmpfs, /run): the
        # daemon restarted, the kernel still holds what it served; none: the host booted
        restarted = os.path.exists(os.path.join(settings.runtime_dir, "status.json"))
        self.placed = PlacedSource(MergedSource(*sources), self._this_host(),
                                   claims_of=self.xapi.claims if self.xapi else None,
                                   restarted=restarted)
        self.ovsdb = self._ovsdb(backend)
        self.announcer = arp.Announcer()
        # A round for a netlink event: run by the monitor's own thread on Linux bridges
        # (Engine.request_here). On Open vSwitch the kernel thread runs it
        # (request_threadsafe): the event comes while ovs-vswitchd is still setting the
        # bridge up, and a round run in the thread it woke, on its CPU, delayed that
        # (bench/README.md: p50 13-15 -> 21 ms on OVS, 1.90 -> 1.76 ms on Linux bridges).
        here = backend != ovsdb.OPENVSWITCH
        monitor = NetlinkMonitor(
            view, on_change=lambda names: (engine.request_here if here else
                                           engine.request_threadsafe)(names),
            on_overflow=lambda: engine.request_threadsafe(resync=True))
        reconciler = Reconciler(
            source=self.placed, view=view, netlink=netlink, iptables=Iptables(),
            sysctl=Sysctl(), lock=XtablesLock(settings.xtables_lock, settings.xtables_wait),
            statefile=StateFile(settings.state_dir), announce=self.announcer,
            ovs=self.ovsdb, hold_events=monitor.held, fold_events=monitor.fold_pending)
        self.reconciler = reconciler
        engine = Engine(reconciler, executor, loop, resync, on_round=self._after_round)
        self.engine = engine
        if self.ovsdb is not None:
            # a bridge came or went, an own port changed, the connection came back: a
            # round at once (a deleted patch port is back within milliseconds)
            self.ovsdb.on_change = lambda: engine.request_threadsafe()
            self.ovsdb.start()

        await loop.run_in_executor(None, monitor.start)
        self.monitor = monitor
        await in_kernel_thread(resync)

        if self.xapi is not None:
            from agent.daemon.pool import PoolWatch
            self.pool = PoolWatch(loop, self.config.xapi, self.placed, engine.request,
                                  self._applied)
            self._start_xapi_watch()

        udev = None
        if settings.udev != "off":
            try:
                udev = UdevEvents(settings.udev).open()
                loop.add_reader(udev.fileno(), self._on_udev, udev)
            except Exception as exc:  # pyudev raises plain OSError/ImportError variants
                log.warning("udev events unavailable (%s); relying on netlink events", exc)
                udev = None

        for signum, handler in ((signal.SIGTERM, self._on_term), (signal.SIGINT, self._on_term),
                                (signal.SIGHUP, self._on_hup)):
            loop.add_signal_handler(signum, handler)

        core = asyncio.ensure_future(engine.run())
        engine.request(resync=False)
        done, _ = await asyncio.wait([core, engine.first_round, self._stop],
                                     return_when=asyncio.FIRST_COMPLETED)
        if core in done:
            return self._core_died(core)
        if engine.first_round.done():
            await self._start_api()  # READY=1 means: gateways applied and API answering
            self._publish_status(min_interval=0)
            log.info("first reconcile done: %s; ready", reconciler.published.summary)
            self.notifier.notify(ready=1, status=self._status_line())
            _freeze_heap()
        self._start_periodic()
        watchdog = asyncio.ensure_future(self._watchdog())
        done, _ = await asyncio.wait([core, self._stop], return_when=asyncio.FIRST_COMPLETED)
        for task in self._timers + [watchdog]:
            task.cancel()
        if self.pool is not None:
            self.pool.close()
        if core in done:
            return self._core_died(core)
        self.notifier.notify(stopping=1, status="stopping; gateways left in place")
        if self.api_runner is not None:
            await self.api_runner.cleanup()
        engine.stop_direct()   # no more rounds from events, in any thread
        core.cancel()
        if udev is not None:
            loop.remove_reader(udev.fileno())
        # Let a round in flight finish its commit rather than cut it in half (the kernel
        # thread's, or one the monitor's thread runs: shutdown waits for both).
        await loop.run_in_executor(None, executor.shutdown, True)
        self.announcer.close()
        if self.ovsdb is not None:
            await loop.run_in_executor(None, self.ovsdb.stop)
        log.info("stopped; %s left in place", reconciler.published.summary)
        return self.exit_code

    def _ovsdb(self, backend):
        """The daemon's one OVSDB connection (agent.adapters.ovsdb) on an Open vSwitch
        host (``backend``, from network.conf); None on Linux bridges, where links are
        refused before they reach a writer. Started once the engine exists; it never
        stops the daemon, down or not."""
        from agent.adapters import ovsdb
        settings = self.config.agent
        if backend != ovsdb.OPENVSWITCH:
            log.info("network backend: Linux bridges (%s); no OVSDB connection",
                     settings.network_conf)
            return None
        return ovsdb.Ovsdb(settings.ovsdb)

    async def _start_api(self):
        """Serve the API: the root-only Unix socket always; TCP when configured and its
        token file, TLS files and port are usable. A TCP problem disables TCP only, loudly
        (log, status.json, /v1/health, doctor); the gateways run whatever the API does."""
        from agent.api import server
        config = self.config
        path = configmod.api_socket(config)
        tokens, context = [], None
        if config.api.listen:
            try:
                tokens, context = server.tcp_setup(config)
            except ConfigError as exc:
                self._tcp_failed(exc)
        try:
            api = server.build(config, DaemonState(self), tokens)
            self.api_guard = server.Guard(config.api)
            self.api_runner = await server.start(api, path, guard=self.api_guard)
            self.api["socket"] = path
        except (ConfigError, OSError) as exc:
            log.error("the API is not served: %s (gateways are enforced all the same)", exc)
            return
        if config.api.listen and self.api["tcp_error"] is None:
            try:
                await server.serve_tcp(self.api_runner, config.api.listen, context,
                                       guard=self.api_guard)
            except OSError as exc:
                self._tcp_failed(exc)

    def _tcp_failed(self, exc):
        reason = getattr(exc, "strerror", None) or str(exc)
        self.api["tcp_error"] = reason
        log.error("the API is NOT served on TCP %s: %s; the Unix socket and the gateways "
                  "run; fix it, then restart the daemon", self.config.api.listen, reason)

    def api_metrics(self):
        guard = self.api_guard
        return guard.metrics() if guard is not None else []

    def _core_died(self, core):
        exc = core.exception() if not core.cancelled() else None
        log.critical("the reconciler died: %r; exiting so that systemd restarts the daemon",
                     exc, exc_info=exc)
        return EXIT_FAILURE

    def _this_host(self):
        """This host for placement: [xapi] host, else the inventory's INSTALLATION_UUID."""
        if self.config.xapi.url == "none":
            return ""
        if self.config.xapi.host:
            return self.config.xapi.host
        from agent.adapters.xapi import read_inventory_uuid
        return read_inventory_uuid(self.config.xapi.inventory) or ""

    def _start_xapi_watch(self):
        from agent.adapters.xapi import NetworkWatcher
        xapi, loop = self.config.xapi, self.loop

        def on_networks(networks):
            loop.call_soon_threadsafe(self._xapi_networks, networks)

        def on_pool(records):
            loop.call_soon_threadsafe(self._xapi_pool, records)

        def on_state(connected, reason):
            loop.call_soon_threadsafe(self._xapi_state, connected, reason)
        self.watcher = NetworkWatcher(xapi.url, xapi.username, xapi.password,
                                      on_networks, on_state, timeout=xapi.timeout,
                                      on_pool=on_pool)
        self.watcher.start()

    def _xapi_networks(self, networks):
        self.xapi.update(networks)
        self.engine.request()

    def _xapi_pool(self, records):
        self.pool.pool_records(records)

    def _applied(self):
        """The names of the gateways the last round applied."""
        return set(gw["name"] for gw in self.reconciler.published.gateways
                   if gw["state"] == "applied")

    def _xapi_state(self, connected, reason):
        if connected != self.xapi.connected:
            if connected:
                log.info("connected to XAPI at %s", self.config.xapi.url)
            else:
                log.warning("lost XAPI at %s (%s); enforcing the last known gateways",
                            self.config.xapi.url, reason)
        self.xapi.connected, self.xapi.reason = connected, reason
        self.pool.xapi_state(connected)
        self._publish_status(min_interval=0)

    # ---- events ------------------------------------------------------------------------
    def _on_udev(self, udev):
        try:
            events = udev.drain()
        except Exception:
            log.exception("reading udev events failed")
            return
        names = set(name for _action, name in events)
        if names:
            log.debug("udev: %s", ", ".join("%s %s" % e for e in events))
            self.engine.request(names)

    def _on_term(self):
        if not self._stop.done():
            log.info("stop requested; gateways stay in place")
            self._stop.set_result(True)

    def _on_hup(self):
        self.notifier.notify(reloading=1)
        path = self.args.config
        try:
            config = load_config(path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            self.notifier.notify(ready=1, status="reload refused: %s" % exc)
            return
        from agent.daemon import logs
        config, restart = configmod.reloaded(self.config, config)
        logs.set_level(self.args.log_level or config.agent.log_level)
        intervals = (self.config.agent.check_interval, self.config.agent.resync_interval)
        self.config = config
        self.restart_needed = restart
        self.source.replace(config.gateways)
        if intervals != (config.agent.check_interval, config.agent.resync_interval) and \
                getattr(self, "_timers", None) is not None:
            self._start_periodic()
        log.info("configuration reloaded from %s: %d gateway(s), check_interval %s s, "
                 "resync_interval %s s, log_level %s", path, len(config.gateways),
                 config.agent.check_interval, config.agent.resync_interval,
                 config.agent.log_level)
        if restart:
            log.warning("reload: running with the old values of what changed; restart the "
                        "daemon to apply: %s", "; ".join(restart))
        self.engine.request()
        self.notifier.notify(ready=1, status="reloaded%s" % (
            "; restart needed for: " + "; ".join(restart) if restart else ""))
        self._publish_status(min_interval=0)

    def _start_periodic(self):
        """The drift check and the netlink re-read, at the configured intervals (a reload
        that changes them starts them again)."""
        for task in getattr(self, "_timers", ()):
            task.cancel()
        settings, engine = self.config.agent, self.engine
        self._timers = [
            asyncio.ensure_future(self._periodic(settings.check_interval,
                                                 lambda: engine.request())),
            asyncio.ensure_future(self._periodic(settings.resync_interval,
                                                 lambda: engine.request(resync=True)))]

    async def _periodic(self, interval, action):
        while True:
            await asyncio.sleep(interval)
            action()

    async def _watchdog(self):
        # None when systemd set no watchdog: nothing to ping, but still exit if the netlink
        # monitor thread died.
        interval = self.notifier.watchdog_interval()
        while True:
            await asyncio.sleep(interval or 5.0)
            if not self.monitor.is_alive():
                log.critical("the netlink monitor thread died; exiting")
                self.exit_code = EXIT_FAILURE
                self._on_term()
                return
            if interval and self.engine.healthy(max_round_seconds=interval * 2):
                self.notifier.notify(watchdog=1)

    def _after_round(self, result):
        if self.pool is not None:
            self.pool.after_round()
        snapshot = self.reconciler.published
        self.metrics.observe_round(result, snapshot.gateways)
        text = self._status_line()
        if text != self._status_text:
            self._status_text = text
            self.notifier.notify(status=text)
        self._publish_status()

    def _status_line(self):
        """sd_notify STATUS=: the gateways, and what is wrong."""
        snapshot = self.reconciler.published
        problems = []
        if snapshot.failure is not None:
            problems.append("rounds failing: %s" % snapshot.failure["code"])
        if self.api["tcp_error"]:
            problems.append("API TCP off")
        return snapshot.summary + ("; " + "; ".join(problems) if problems else "")

    def status_data(self):
        """status.json's content, from the reconciler's last snapshot."""
        snapshot = self.reconciler.published
        data = self.check_data(snapshot)
        data.update({
            "pid": os.getpid(), "version": agent.__version__, "started": self.started,
            "config": self.config.path, "summary": snapshot.summary,
            "writes": snapshot.writes,
            "iptables_commits": snapshot.commits, "last_round": snapshot.round_dict(),
            "round_failures": snapshot.failures,
            "xapi": None if self.xapi is None else {"url": self.config.xapi.url,
                                                    "connected": self.xapi.connected,
                                                    "reason": self.xapi.reason},
            "gateways": list(snapshot.gateways),
            "tunnels": self.placed.tunnel_status(dict(snapshot.tunnels))
            if getattr(self, "placed", None) else [],
            "restart_needed": self.restart_needed,
            "pool": None if self.pool is None else self.pool.status(),
        })
        return data

    def check_data(self, snapshot=None):
        """The part of status.json the daemon's checks read (agent.service.doctor's
        ``daemon_checks``): /v1/health asks for it on every request, without the
        gateways' list and the pool's tunnels that the rest of status.json copies."""
        snapshot = snapshot or self.reconciler.published
        return {"rounds": snapshot.rounds, "round_failure": snapshot.failure,
                "api": dict(self.api),
                "ovsdb": self.ovsdb.state() if self.ovsdb is not None else None,
                "links": [_link_view(st) for st in snapshot.links]}

    def _publish_status(self, min_interval=1.0):
        """Write status.json when a gateway's state, a failure or the pool (tunnels)
        changed, else at most once a second (the counters change every round; rewriting
        250 KB each round is waste)."""
        from agent.adapters.statefile import write_atomic
        from agent.errors import StateError
        snapshot = self.reconciler.published
        key = (snapshot.gateways, snapshot.links, snapshot.tunnels, snapshot.failure,
               self.api["tcp_error"],
               getattr(getattr(self, "placed", None), "version", None))
        last_key, last_time = self._published
        now = time.monotonic()
        if key == last_key and now - last_time < min_interval:
            return
        self._published = (key, now)
        path = os.path.join(self.config.agent.runtime_dir, "status.json")
        try:
            # streamed: json.dumps made a list of ~100,000 small chunks and their join
            # (~4 MB at 1,000 gateways) at each publication, leaving the heap that much
            # larger between rounds
            write_atomic(path, itertools.chain(_STATUS_JSON.iterencode(self.status_data()),
                                               ("\n",)), durable=False)
        except StateError as exc:
            log.warning("cannot publish status: %s", exc)


if __name__ == "__main__":
    sys.exit(main())
