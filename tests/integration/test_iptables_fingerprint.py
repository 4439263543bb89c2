"""The iptables adapter's table fingerprint: an idle check skips the walk only when the
kernel's table holds exactly the entries of the last walk (counters aside)."""
import json
import sys

import pytest

from agent.adapters.iptables import TableReader
from tests.integration import netns as N

# Run inside the namespace: the adapter's fingerprint and walk count around changes made
# with the iptables binary (argv[1:] lists them as JSON: [[label, [iptables args]], ...]).
SCRIPT = r'''
import json, subprocess, sys
from agent.adapters.iptables import Iptables, TableReader

steps = json.loads(sys.argv[1])
# argv[2]: the largest table kept and compared byte for byte; above it, its own mapping
# and a hash (0: this small table takes the large tables' way)
TableReader.KEPT = int(sys.argv[2])
ipt, reader = Iptables(), TableReader()
out = []
observed = ipt.observe("filter")
for label, args in steps:
    before, walks = reader.fingerprint("filter"), ipt.walks
    if args[0] == "restore":  # one commit of several changes
        subprocess.run(["iptables-legacy-restore", "-w", "--noflush", "--counters"], check=True,
                       input=args[1].encode())
    else:
        subprocess.run(["iptables-legacy", "-w"] + args, check=True, stdout=subprocess.DEVNULL)
    again = ipt.observe("filter")
    now = reader.fingerprint("filter")
    out.append({"label": label, "same": now == before, "size": list(now[:2]),
                # a reader that never saw the table before gives the same fingerprint
                "fresh": now == TableReader().fingerprint("filter"),
                "walked": ipt.walks > walks,
                "rules": [[v.key, list(v.match)] for v in again.get("XGW-FORWARD", [])]})
print(json.dumps(out))
'''

RULE = ["-s", "172.16.1.0/24", "-m", "comment", "--comment",
        "xgw:xapi1:forward-out:172.16.1.0/24", "-j", "ACCEPT"]


# another rule of ours, of another size (a conntrack match more)
OTHER = ["-d", "172.16.1.0/24", "-o", "xapi1", "-m", "conntrack", "--ctstate",
         "RELATED,ESTABLISHED", "-m", "comment", "--comment",
         "xgw:xapi1:forward-back:172.16.1.0/24", "-j", "ACCEPT"]


def run_steps(ns, steps, kept):
    proc = ns.run([sys.executable, "-c", SCRIPT, json.dumps(steps), str(kept)], check=False,
                  env=dict(N.os.environ, PYTHONPATH=N.REPO))
    assert proc.returncode == 0, proc.stderr
    return dict((s["label"], s) for s in json.loads(proc.stdout))


# a small table's entries are compared themselves; a large one's by a hash (TableReader)
@pytest.mark.parametrize("kept", [TableReader.KEPT, 0], ids=["entries", "hashed"])
def test_counters_alone_keep_the_fingerprint_and_every_edit_changes_it(kept):
    ns = N.Netns("fp")
    try:
        ns.dom0_firewall(forward_chain=True)
        ns.ipt("-A", "XGW-FORWARD", *RULE)
        steps = run_steps(ns, [
            ["nothing", ["-L", "-n"]],
            # the same rule with other packet and byte counters
            ["counters", ["-R", "XGW-FORWARD", "1", "-c", "7", "700"] + RULE],
            ["counters zeroed", ["-Z", "XGW-FORWARD"]],
            # same size, one byte different: xapi1 -> xapi9 as the interface
            ["altered in place", ["-R", "XGW-FORWARD", "1", "-i", "xapi9"] + RULE],
            # same size, only a match's data differs (the comment, past the counters)
            ["comment altered", ["-R", "XGW-FORWARD", "1", "-i", "xapi9"]
             + [a.replace("xapi1", "xapi2") for a in RULE]],
            ["foreign rule added", ["-A", "FORWARD", "-s", "192.0.2.0/24", "-j", "DROP"]],
            ["our rule deleted", ["-D", "XGW-FORWARD", "1"]],
            ["two rules", ["restore", "*filter\n-A XGW-FORWARD %s\n-A XGW-FORWARD %s\n"
                           "COMMIT\n" % (" ".join(RULE), " ".join(OTHER))]],
            # the same size and entry count, the two entries (of two sizes) swapped: the
            # counters are no longer where they were
            ["swapped", ["restore", "*filter\n-F XGW-FORWARD\n[3:300] -A XGW-FORWARD %s\n"
                         "[5:500] -A XGW-FORWARD %s\nCOMMIT\n" % (" ".join(OTHER),
                                                                   " ".join(RULE))]],
            ["swapped counters", ["-Z", "XGW-FORWARD"]],
        ], kept)
        assert all(step["fresh"] for step in steps.values()), steps
        assert steps["swapped"]["size"] == steps["two rules"]["size"]
        for label in ("nothing", "counters", "counters zeroed", "swapped counters"):
            assert steps[label]["same"] and not steps[label]["walked"], label
        for label in ("altered in place", "comment altered", "foreign rule added",
                      "our rule deleted", "two rules", "swapped"):
            assert not steps[label]["same"] and steps[label]["walked"], label
        key = "xgw:xapi1:forward-out:172.16.1.0/24"
        assert steps["counters"]["rules"] == [[key, ["172.16.1.0/24", None, None, None, None,
                                                     None, None, None]]]
        assert steps["altered in place"]["rules"][0][1][2] == "xapi9"
        assert steps["comment altered"]["rules"][0][0] == key.replace("xapi1", "xapi2")
        assert steps["our rule deleted"]["rules"] == []
        assert [r[0] for r in steps["swapped"]["rules"]] == [
            "xgw:xapi1:forward-back:172.16.1.0/24", key]
    finally:
        ns.delete()
