"""What every XenServer has before anyone logs in: one host and its pool.

(The XenAPI SDK reads the pool's master and the host's API version right after login.)
The storage the VM operations need (a local ext SR, an ISO SR) is not simulated yet.
"""

API_VERSION = (2, 21)  # XenServer 8 / XCP-ng 8.3


def seed(engine, hostname="xgw-sim", bridges=None):
    """Create the host, its pool, its networks (eth0's and the HIMN) and the "Other
    install media" template, and install the network and VM handlers; ``bridges`` (an
    agent.xapisim.bridges.Bridges) makes private networks' bridges for real. Returns
    (host ref, pool ref)."""
    from agent.xapisim import network, vms
    from agent.xapisim.bridges import Bridges
    network.install(engine)
    vms.install(engine, bridges or Bridges(enabled=False))
    host = engine.create("host", name_label=hostname, hostname=hostname, enabled=True,
                         address="127.0.0.1", API_version_major=API_VERSION[0],
                         API_version_minor=API_VERSION[1], API_version_vendor="XenServer")
    pool = engine.create("pool", name_label="", master=host)
    network.seed(engine, host)
    vms.seed(engine)
    return host, pool
