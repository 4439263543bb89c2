#!/bin/bash
# The seed way, for the benchmark: the udev-run script from the blog post that
# xapi-gateway replaces, reproduced faithfully (its sleep, its greps, its one NAT rule),
# for one bridge.
#
#   seed-gateway.sh BRIDGE GATEWAY_CIDR        e.g. seed-gateway.sh xapi1 172.16.1.1/24
#
# Environment: SEED_SLEEP (default 5: the blog's "wait for XAPI to finish with the
# bridge"), IPTABLES (default iptables-legacy, as Dom0 uses legacy x_tables).
#
# Like the original it adds no FORWARD accept, so behind Dom0's stock firewall
# (FORWARD -> RH-Firewall-1-INPUT ... REJECT) forwarded TCP from the VMs is rejected.
#
# Safety: it changes the network of the namespace it runs in, so it refuses to run
# outside a named network namespace (ip netns exec ...) unless SEED_ALLOW_HOST=1.
set -u

BRIDGE=${1:?usage: seed-gateway.sh BRIDGE GATEWAY_CIDR}
CIDR=${2:?usage: seed-gateway.sh BRIDGE GATEWAY_CIDR}
IPT=${IPTABLES:-iptables-legacy}
command -v "$IPT" >/dev/null 2>&1 || IPT=iptables

if [ "${SEED_ALLOW_HOST:-0}" != 1 ] && [ -z "$(ip netns identify $$ 2>/dev/null)" ]; then
    echo "seed-gateway.sh: not inside a named network namespace; refusing" >&2
    exit 2
fi

# 172.16.1.1/24 -> ADDR 172.16.1.1, PREFIX 24, NET 172.16.1.0, MASK 255.255.255.0
ADDR=${CIDR%/*}
PREFIX=${CIDR#*/}
IFS=. read -r o1 o2 o3 o4 <<EOF
$ADDR
EOF
ip_int=$(( (o1 << 24) | (o2 << 16) | (o3 << 8) | o4 ))
mask_int=$(( (0xffffffff << (32 - PREFIX)) & 0xffffffff ))
net_int=$(( ip_int & mask_int ))
dotted() { echo "$(( ($1 >> 24) & 255 )).$(( ($1 >> 16) & 255 )).$(( ($1 >> 8) & 255 )).$(( $1 & 255 ))"; }
NET=$(dotted $net_int)
MASK=$(dotted $mask_int)

sleep "${SEED_SLEEP:-5}"

# Gateway address on the bridge.
if ip addr | grep "$ADDR/$PREFIX" >/dev/null; then
    :
else
    ip addr add "$ADDR/$PREFIX" dev "$BRIDGE"
fi

# Route to the private subnet.
if command -v route >/dev/null 2>&1; then
    if route -n | grep "$NET" >/dev/null; then
        :
    else
        route add -net "$NET" netmask "$MASK" dev "$BRIDGE"
    fi
else
    echo "seed-gateway.sh: route (net-tools) is missing; using ip route instead" >&2
    if ip route | grep "$NET/$PREFIX" >/dev/null; then
        :
    else
        ip route add "$NET/$PREFIX" dev "$BRIDGE"
    fi
fi

# NAT for the subnet going elsewhere.
if $IPT -t nat -S | grep "$NET/$PREFIX" >/dev/null; then
    :
else
    $IPT -t nat -A POSTROUTING -s "$NET/$PREFIX" ! -d "$NET/$PREFIX" -j MASQUERADE
fi

# Forwarding.
sysctl -w net.ipv4.ip_forward=1 >/dev/null
