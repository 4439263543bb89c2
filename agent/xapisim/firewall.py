"""The filter table a XenServer / XCP-ng Dom0 boots with, for the tests and the demo.

The simulator stands in for XAPI; this stands in for the rest of a Dom0 that matters to
a gateway: its firewall, loaded with ``iptables-legacy-restore`` into a namespace.
"""

DOM0_FIREWALL = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:RH-Firewall-1-INPUT - [0:0]
-A INPUT -j RH-Firewall-1-INPUT
-A FORWARD -j RH-Firewall-1-INPUT
-A RH-Firewall-1-INPUT -i lo -j ACCEPT
-A RH-Firewall-1-INPUT -p icmp --icmp-type any -j ACCEPT
-A RH-Firewall-1-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A RH-Firewall-1-INPUT -p tcp -m conntrack --ctstate NEW -m tcp --dport 22 -j ACCEPT
-A RH-Firewall-1-INPUT -j REJECT --reject-with icmp-host-prohibited
COMMIT
"""
# As in Dom0's stock /etc/sysconfig/iptables: FORWARD shares RH-Firewall-1-INPUT with
# INPUT, so forwarded ICMP passes but a forwarded TCP connection to anything but ports it
# opens meets the final REJECT, unless XGW-FORWARD accepts it first.
