"""The XenAPI SDK's example scripts, written against real xapi, run unchanged (but for the
Python 3 port in porting.diff) against the simulator served over HTTP: each must do
what it did on a real host. Sources and licences: README.md here."""
import os
import signal
import subprocess
import sys
import time

import pytest
import XenAPI

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts")
GIB = 1024 ** 3


def _interruptible():
    """(In the child, before exec) Ctrl-C's default: a suite started in the background
    of a non-interactive shell (``cmd &``, nohup) inherits SIGINT ignored, and Python
    then never raises KeyboardInterrupt, which is how watch-all-events.py is stopped."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def script(name, *args, **kwargs):
    """Start a script with the test's Python (its XenAPI SDK), output unbuffered."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, os.path.join(SCRIPTS, name)] + list(args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, env=env, cwd=SCRIPTS,
                            preexec_fn=_interruptible, **kwargs)


def run(name, *args):
    process = script(name, *args)
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def read_until(process, text, timeout=20):
    """The script's output lines up to the first one containing ``text``."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    process.kill()
    raise AssertionError("no %r in the output of the script: %s %s"
                         % (text, "".join(lines), process.stderr.read()))


@pytest.fixture
def sim(served):
    engine, url, _unix = served
    session = XenAPI.Session(url)
    session.xenapi.login_with_password("root", "", "1.0", "conformance")
    yield engine, url, session.xenapi
    session.xenapi.session.logout()


def guest(x, name):
    vm = x.VM.clone(x.VM.get_by_name_label("Other install media")[0], name)
    x.VM.provision(vm)
    return vm


def test_vm_start_async(sim):
    engine, url, x = sim
    vm = guest(x, "halted one")
    code, out, err = run("vm_start_async.py", url, "root", "")
    assert code == 0, err
    assert "Attempting to start the halted VM asynchronously" in out
    assert "'status': 'success'" in out and "'name_label': 'Async.VM.start'" in out
    assert x.VM.get_power_state(vm) == "Running"


def test_powercycle(sim):
    engine, url, x = sim
    running, suspended = guest(x, "running"), guest(x, "suspended")
    x.VM.start(running, False, False)
    x.VM.start(suspended, False, False)
    x.VM.suspend(suspended)
    domids = int(x.VM.get_domid(running))
    vdis = len(x.VDI.get_all())
    code, out, err = run("powercycle.py", url, "root", "")
    assert code == 0, err
    for name in ("running", "suspended"):
        assert "called %s" % name in out
    assert out.count("beginning iteration 9") == 2
    assert out.count("      suspending...") == 18 and out.count("      resuming...") == 18
    assert [x.VM.get_power_state(v) for v in (running, suspended)] == ["Halted", "Halted"]
    assert engine.next_domid > domids + 18 * 2        # every start and resume a new domain
    assert len(x.VDI.get_all()) == vdis - 1           # no suspend image left behind
    dom0 = x.host.get_control_domain(x.host.get_all()[0])
    assert x.VM.get_power_state(dom0) == "Running"    # control domains are left alone


def test_fixpbds(sim):
    engine, url, x = sim
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    old = x.SR.get_PBDs(sr)
    code, out, err = run("fixpbds.py", url, "root", "", x.SR.get_uuid(sr))
    assert code == 0, err + out
    pbds = x.SR.get_PBDs(sr)
    assert len(pbds) == 1 and pbds != old
    rec = x.PBD.get_record(pbds[0])
    assert rec["device_config"] == {"device": "/dev/sda3", "target": "127.0.0.2"}
    assert rec["currently_attached"] is True and rec["host"] == x.host.get_all()[0]
    assert old[0] not in engine.objects["PBD"]


def test_fixpbds_refused_while_a_disk_is_in_use(sim):
    engine, url, x = sim
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    vm = guest(x, "user")
    vdi = x.VDI.create({"SR": sr, "virtual_size": str(GIB), "type": "user", "sharable": False,
                        "read_only": False, "other_config": {}})
    x.VBD.create({"VM": vm, "VDI": vdi, "userdevice": "0", "bootable": True, "mode": "RW",
                  "type": "Disk", "empty": False, "unpluggable": False, "other_config": {},
                  "qos_algorithm_type": "", "qos_algorithm_params": {}})
    x.VM.start(vm, False, False)
    pbds = x.SR.get_PBDs(sr)
    code, out, _err = run("fixpbds.py", url, "root", "", x.SR.get_uuid(sr))
    assert code == 1 and "VDI_IN_USE" in out
    assert x.SR.get_PBDs(sr) == pbds and x.PBD.get_currently_attached(pbds[0]) is True


def test_install_with_provision(sim):
    """install.py: a Debian template's disks on the default SR, a VIF on eth0's network,
    started; it then waits for the guest agent's report, which no simulated guest sends
    (the test stops it there)."""
    engine, url, x = sim
    template = x.VM.clone(x.VM.get_by_name_label("Other install media")[0],
                          "Debian Bookworm 12")
    x.VM.add_to_other_config(template, "disks", (
        '<provision><disk device="0" size="%d" sr="" bootable="true" type="system"/>'
        '</provision>' % (8 * GIB)))
    process = script("install.py", url, "root", "")
    try:
        out = read_until(process, "Waiting for the installation to complete")
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
        process.stderr.close()
    text = "".join(out)
    assert "Choosing PIF with device:  eth0" in text and "Selected template:  Debian" in text
    vm = x.VM.get_by_name_label("new")[0]
    rec = x.VM.get_record(vm)
    assert (rec["power_state"], rec["is_a_template"], rec["PV_args"]) == (
        "Running", False, "non-interactive")
    assert "disks" not in rec["other_config"]
    disks = [x.VBD.get_record(b) for b in rec["VBDs"]]
    assert [(d["userdevice"], d["bootable"], d["currently_attached"]) for d in disks] == [
        ("0", True, True)]
    vdi = x.VDI.get_record(disks[0]["VDI"])
    assert (vdi["virtual_size"], vdi["SR"]) == (str(8 * GIB),
                                                x.pool.get_default_SR(x.pool.get_all()[0]))
    eth0 = [p for p, r in x.PIF.get_all_records().items() if r["device"] == "eth0"][0]
    vif = x.VIF.get_record(rec["VIFs"][0])
    assert vif["network"] == x.PIF.get_network(eth0) and vif["currently_attached"] is True


def test_watch_all_events(sim):
    engine, url, x = sim
    sessions = len(engine.objects["session"])
    process = script("watch-all-events.py", url, "root", "")
    try:
        out = read_until(process, "Waiting for 10 seconds before next poll")
        process.send_signal(signal.SIGINT)   # how its user stops it
        rest, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    text = "".join(out)
    assert "Number of events retrieved: " in text
    rows = [line.split() for line in out if len(line.split()) >= 3 and line.split()[0].isdigit()]
    classes = {row[1] for row in rows}
    assert {"vm", "host", "pool", "network", "sr", "vdi"} <= classes
    assert all(row[2] == "add" for row in rows)
    assert "Other install media" in text
    assert len(engine.objects["session"]) == sessions  # it logged out


def test_shell_one_command(sim):
    engine, url, x = sim
    host = x.host.get_all()[0]
    code, out, err = run("shell.py", url, "root", "", "host.get_software_version", host)
    assert code == 0, err
    assert "'product_version': '8.3.0'" in out and "'network_backend': 'openvswitch'" in out
    code, out, err = run("shell.py", url, "root", "", "VM.start", "OpaqueRef:nope", "False",
                         "False")
    assert code == 2 and "HANDLE_INVALID" in err


def test_provision_module_self_test():
    code, out, err = run("provision.py")
    assert code == 0, err
    assert "* OK: print(parse(print(x))) == print(x)" in out
