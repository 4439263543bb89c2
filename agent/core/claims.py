"""Who may serve a wired network's gateway right now: the claim recorded in XAPI (pure).

Placement (agent.core.placement) is computed by every host from its own view, and views
differ for a moment (one host hears a peer that another no longer hears). The pool
master serialises writes, and ``network.add_to_other_config`` fails with
MAP_DUPLICATE_KEY when the key exists, so one key arbitrates:

    other_config:xapi-gateway-claim = <host uuid>:<epoch>     (held)
    other_config:xapi-gateway-claim = :<epoch>                 (released)

(outside the ``xapi-gateway.`` keys on purpose: it makes no gateway and is no gateway
value; the daemon alone writes it). For a gateway on a wired network, ``verdict`` says
what this host does:

- placement says this host, and the claim is its own: SERVE;
- placement says this host, and there is no claim (a released or an unreadable one):
  CLAIM (write it; serve only once the write succeeded);
- placement says this host, and the holder is unfit in this host's view (not a pool
  member, not live, disabled, without the network, or unreachable: no heartbeat for the
  hold time): TAKE (remove that claim, add its own with the next epoch; serve only once
  the add succeeded). Only the host placement chooses replaces a claim, the deterministic
  successor;
- placement says this host, and the holder is fit: WAIT (the holder hands over);
- placement says another host (or none), and the claim is this host's: RELEASE (stop
  serving at once; the claim is marked released after the round that removed the
  gateway);
- otherwise: STANDBY (not served here).

A host serves only while the claim it last saw in the database is its own; when it sees
another's, it stops at once. The epoch counts the changes of hands, a released claim's
included, so the log and status tell one tenure from the next. Host-local networks and config-file gateways have no claim.
"""
from collections import namedtuple

CLAIM = "xapi-gateway-claim"

SERVE = "serve"
CLAIM_IT = "claim"
TAKE = "take"
WAIT = "wait"
RELEASE = "release"
STANDBY = "standby"


class Claim(namedtuple("Claim", "holder epoch")):
    """A parsed claim: the holder's host uuid ('' once released) and the count of changes
    of hands."""
    __slots__ = ()

    def text(self):
        return "%s:%d" % (self.holder, self.epoch)


def parse(value):
    """The Claim in an other_config value; None for no claim or an unreadable one (which
    the placed host replaces)."""
    if not value:
        return None
    holder, sep, epoch = value.strip().rpartition(":")
    if not sep or not epoch.isdigit():
        return None
    return Claim(holder, int(epoch))


def of_network(record):
    """The raw claim value in a network record's other_config ('' when none)."""
    return (record.get("other_config") or {}).get(CLAIM, "")


def newer(known, seen):
    """The claim value to go by when ``known`` was the last one and ``seen`` arrives. A
    change of hands removes the old claim before it adds the new one, so the events can
    show the key gone for a moment: a missing (or unreadable) claim does not replace a
    readable one. Any readable claim seen is the truth, whatever its epoch (a gateway
    rewritten through the API may carry an older one back: every host then follows it
    alike)."""
    if parse(seen) is None and parse(known) is not None:
        return known
    return seen


def successor(current, me):
    """The claim this host writes over ``current`` (a Claim or None)."""
    return Claim(me, (current.epoch if current else 0) + 1)


class Verdict(namedtuple("Verdict", "action write reason")):
    """``action``: one of SERVE, CLAIM_IT, TAKE, WAIT, RELEASE, STANDBY; ``write``: for
    CLAIM_IT, TAKE and RELEASE, (old value or '', new value or ''); ``reason``: words for
    status."""
    __slots__ = ()

    @property
    def serves(self):
        return self.action == SERVE


def verdict(here, raw, me, unfit):
    """What this host (uuid ``me``) does with a wired network's gateway. ``here``:
    placement chose this host; ``raw``: the claim value as last seen ('' for none);
    ``unfit(uuid)``: why that host cannot serve in this host's view ('' when it can)."""
    claim = parse(raw)
    mine = claim is not None and claim.holder == me
    if not here:
        if mine:
            return Verdict(RELEASE, (raw, Claim("", claim.epoch + 1).text()),
                           "handing over: placement chose another host")
        return Verdict(STANDBY, None, "")
    if mine:
        return Verdict(SERVE, None, "claim %s held" % raw)
    if claim is None or not claim.holder:
        new = successor(claim, me).text()
        return Verdict(CLAIM_IT, (raw, new), "claiming (%s)" % (
            "no claim yet" if not raw else "released by its last holder" if claim
            else "unreadable claim %r" % raw))
    trouble = unfit(claim.holder)
    if trouble:
        return Verdict(TAKE, (raw, successor(claim, me).text()),
                       "taking over from %s, which %s" % (claim.holder, trouble))
    return Verdict(WAIT, None, "waiting for %s to hand over" % claim.holder)
