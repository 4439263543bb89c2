"""The iptables adapter writes raw ipt_entry bytes (encode_rule, jump_entry) instead of
python-iptables Rule objects: the kernel must end up with exactly the tables the old
writer made, and iptables-save must show the rules as the iptables binary writes them."""
import json
import os
import sys

from tests.integration import netns as N

SCRIPT = os.path.join(N.HELPERS, "raw_rules.py")


def put_rules(mode):
    ns = N.Netns("raw")
    try:
        ns.run(["iptables-legacy-restore"], input=N.DOM0_FIREWALL)
        proc = ns.run([sys.executable, SCRIPT, mode], check=False,
                      env=dict(os.environ, PYTHONPATH=N.REPO))
        assert proc.returncode == 0, proc.stderr
        saved = {t: [l for l in ns.save(t).splitlines()
                     if l.startswith(("-A", ":XGW"))] for t in ("nat", "filter")}
        return json.loads(proc.stdout), saved
    finally:
        ns.delete()


def test_raw_entries_equal_what_python_iptables_made_byte_for_byte():
    """Three gateways (MASQUERADE, FORWARD accepts with and without conntrack, inbound
    from a network and from anywhere, tcp and udp forwards with addrtype, DNAT, hairpin):
    both tables' fingerprints (every entry's bytes but the counters) are equal, the
    observer reads every rule back as the one wanted (nothing left to change)."""
    raw, raw_saved = put_rules("adapter")
    ref, ref_saved = put_rules("python-iptables")
    assert raw["rules"] > 20
    assert raw["left"] == [] and ref["left"] == []
    assert raw_saved == ref_saved
    assert raw["fingerprints"] == ref["fingerprints"]


def test_iptables_save_shows_the_rules_as_iptables_writes_them():
    raw, saved = put_rules("adapter")
    nat, filt = saved["nat"], saved["filter"]
    assert "-A POSTROUTING -j XGW-POSTROUTING" in nat
    assert "-A FORWARD -j XGW-FORWARD" in filt
    assert ('-A XGW-POSTROUTING -s 172.16.1.0/24 ! -d 172.16.1.0/24 -m comment --comment '
            '"xgw:xapi1:masquerade:172.16.1.0/24" -j MASQUERADE') in nat
    assert ('-A XGW-PREROUTING -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 8080 -m '
            'comment --comment "xgw:xapi1:dnat:tcp:8080=172.16.1.10:80" -j DNAT '
            '--to-destination 172.16.1.10:80') in nat
    assert ('-A XGW-OUTPUT ! -d 127.0.0.0/8 -p udp -m addrtype --dst-type LOCAL -m udp '
            '--dport 5353 -m comment --comment "xgw:xapi1:dnat-local:udp:5353=172.16.1.11:53"'
            ' -j DNAT --to-destination 172.16.1.11:53') in nat
    assert ('-A XGW-POSTROUTING -s 172.16.1.0/24 -d 172.16.1.10/32 -o xapi1 -p tcp -m tcp '
            '--dport 80 -m conntrack --ctstate DNAT -m comment --comment '
            '"xgw:xapi1:hairpin:tcp:8080=172.16.1.10:80" -j MASQUERADE') in nat
    assert ('-A XGW-FORWARD -d 172.16.1.0/24 -o xapi1 -m conntrack --ctstate '
            'RELATED,ESTABLISHED -m comment --comment "xgw:xapi1:forward-back:172.16.1.0/24"'
            ' -j ACCEPT') in filt
    assert ('-A XGW-FORWARD -s 172.16.1.0/24 -i xapi1 -m comment --comment '
            '"xgw:xapi1:forward-out:172.16.1.0/24" -j ACCEPT') in filt
    assert ('-A XGW-FORWARD -s 192.0.2.0/24 -d 172.16.1.0/24 -o xapi1 -m comment --comment '
            '"xgw:xapi1:inbound:192.0.2.0/24" -j ACCEPT') in filt
    assert ('-A XGW-FORWARD -d 172.16.2.0/24 -o xapi2 -m comment --comment '
            '"xgw:xapi2:inbound:0.0.0.0/0" -j ACCEPT') in filt
    assert not any("xapi2:masquerade" in l for l in nat)
