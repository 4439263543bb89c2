"""Run inside ``unshare -m -n``: a private /run and /sys, our hooks/ rule, a private
systemd-udevd (unless MODE is 'kernel'), the daemon listening with pyudev, then a xapi*
bridge and a non-matching bridge. Prints one JSON line with what happened.

usage: udev_scenario.py WORKDIR MODE   (MODE: udev | kernel)
"""
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
workdir, mode = sys.argv[1], sys.argv[2]
UDEVD = "/lib/systemd/systemd-udevd"


def sh(*cmd):
    subprocess.check_call(cmd)


def wait(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    return None


def status():
    try:
        with open(os.path.join(workdir, "run", "status.json")) as f:
            return json.load(f)
    except (IOError, OSError, ValueError):
        return None


def gateway(name):
    for gw in (status() or {}).get("gateways", []):
        if gw["name"] == name:
            return gw
    return None


sh("mount", "--make-rprivate", "/")
sh("mount", "-t", "tmpfs", "tmpfs", "/run")
sh("mount", "-t", "sysfs", "sysfs", "/sys")
sh("ip", "link", "set", "lo", "up")
result = {"mode": mode}
udevd = None
procs = []
try:
    if mode == "udev":
        os.makedirs("/run/udev/rules.d")
        sh("cp", os.path.join(REPO, "hooks", "90-xapi-gateway.rules"), "/run/udev/rules.d/")
        udevd = subprocess.Popen([UDEVD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(udevd)
        result["udevd_ready"] = bool(wait(lambda: os.path.exists("/run/udev/control")))
    with open(os.path.join(workdir, "agent.conf"), "w") as f:
        f.write("[agent]\nudev = %s\nstate_dir = %s/state\nruntime_dir = %s/run\n"
                "xtables_lock = %s/xtables.lock\nlog_level = debug\n"
                "[xapi]\nurl = none\n[gateway:private]\nbridge = xapi7\naddress = 172.16.7.1/24\n"
                % (mode, workdir, workdir, workdir))
    log = open(os.path.join(workdir, "agent.log"), "w")
    daemon = subprocess.Popen([sys.executable, "-m", "agent.daemon.main", "-c",
                               os.path.join(workdir, "agent.conf")], stdout=log, stderr=log,
                              env=dict(os.environ, PYTHONPATH=REPO))
    procs.append(daemon)
    result["daemon_started"] = bool(wait(lambda: gateway("private")))
    t0 = time.monotonic()
    sh("ip", "link", "add", "xapi7", "type", "bridge")
    sh("ip", "link", "add", "br0", "type", "bridge")
    sh("ip", "link", "set", "xapi7", "up")
    gw = wait(lambda: (gateway("private") or {}).get("state") == "applied" and gateway("private"))
    result["applied"] = bool(gw)
    if gw:
        result["latency_ms"] = round((gw["since_monotonic"] - t0) * 1000, 1)
    if mode == "udev":
        subprocess.call(["udevadm", "settle", "-t", "5"])
        info = lambda dev: subprocess.run(["udevadm", "info", "/sys/class/net/" + dev],
                                          stdout=subprocess.PIPE,
                                          universal_newlines=True).stdout
        result["xapi7_info"] = info("xapi7")
        result["br0_info"] = info("br0")
    time.sleep(0.3)  # let the daemon log the events that are already on their way
    result["address"] = subprocess.run(["ip", "-4", "-o", "addr", "show", "xapi7"],
                                       stdout=subprocess.PIPE,
                                       universal_newlines=True).stdout
finally:
    for proc in reversed(procs):
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    with open(os.path.join(workdir, "agent.log")) as f:
        result["log"] = f.read()
print(json.dumps(result))
