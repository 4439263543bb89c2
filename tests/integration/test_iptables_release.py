"""libiptc's copy of a table (~1 KB a rule) is kept only within a round: the adapter frees
it when the round ends (``release``) and after a commit, and loads the table again when a
later ``apply`` needs it, checking that the kernel still holds what was observed."""
import json
import sys

from tests.integration import netns as N

SCRIPT = r'''
import json, subprocess, sys
from agent.adapters.iptables import Iptables
from agent.core import planner as P
from agent.core import rules as R
from agent.errors import TransientKernelError

def spec(bridge, net):
    return R.RuleSpec("filter", "XGW-FORWARD", R.rule_key(bridge, "forward-out", net),
                      src=net, dst=None, in_iface=bridge, out_iface=None, ctstate=None,
                      target="ACCEPT")

def loaded(ipt):
    return sorted(n for n, t in ipt._tables.items() if t.loaded)

def keys(chains):
    return [v.key for v in chains.get("XGW-FORWARD", [])]

out = {}
ipt = Iptables()
ipt.observe("filter")                 # walks: the copy serves the apply that may follow
out["after walk"] = loaded(ipt)
ipt.release()
out["after release"] = loaded(ipt)
# an apply after the release loads the table again, positions as observed
ipt.apply("filter", [P.AddRule("filter", "XGW-FORWARD", spec("xapi1", "172.16.1.0/24")),
                     P.AddRule("filter", "XGW-FORWARD", spec("xapi2", "172.16.2.0/24"))])
out["after commit"] = loaded(ipt)
seen = ipt.observe("filter")          # our commit changed the table: a walk
out["walked"] = keys(seen)
ipt.release(trim=True)
again = ipt.observe("filter")         # unchanged: from the fingerprint, nothing loaded
out["fingerprint observe"] = loaded(ipt)
first = [v.position for v in again["XGW-FORWARD"] if v.key.startswith("xgw:xapi1:")][0]
ipt.apply("filter", [P.DeleteRule("filter", "XGW-FORWARD", first, again["XGW-FORWARD"][0].key)])
out["after delete"] = keys(ipt.observe("filter"))
ipt.release()
# another program changes the table between the observation and the apply: refused
stale = ipt.observe("filter")
subprocess.run(["iptables-legacy", "-w", "-I", "XGW-FORWARD", "1", "-j", "ACCEPT"], check=True)
try:
    ipt.apply("filter", [P.DeleteRule("filter", "XGW-FORWARD", 0, stale["XGW-FORWARD"][0].key)])
    out["changed under us"] = "applied"
except TransientKernelError as exc:
    out["changed under us"] = str(exc)
print(json.dumps(out))
'''


def test_copies_are_freed_between_rounds_and_reloaded_for_an_apply():
    ns = N.Netns("rel")
    try:
        ns.dom0_firewall(forward_chain=True)
        proc = ns.run([sys.executable, "-c", SCRIPT], check=False,
                      env=dict(N.os.environ, PYTHONPATH=N.REPO))
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert out["after walk"] == ["filter"]
        assert out["after release"] == []
        assert out["after commit"] == []
        assert out["walked"] == ["xgw:xapi1:forward-out:172.16.1.0/24",
                                 "xgw:xapi2:forward-out:172.16.2.0/24"]
        assert out["fingerprint observe"] == []
        assert out["after delete"] == ["xgw:xapi2:forward-out:172.16.2.0/24"]
        assert "changed under us" in out["changed under us"], out
        saved = ns.run(["iptables-legacy-save", "-t", "filter"]).stdout
        assert saved.count("xgw:xapi2:forward-out") == 1
        assert "xgw:xapi1:" not in saved
    finally:
        ns.delete()
