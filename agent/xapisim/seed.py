"""What every XenServer has before anyone logs in: one host and its pool.

(The XenAPI SDK reads the pool's master and the host's API version right after login.)
The rest of the seed the gateway needs (local ext SR, ISO SR, the "Other install media"
template) comes with the VM simulation.
"""

API_VERSION = (2, 21)  # XenServer 8 / XCP-ng 8.3


def seed(engine, hostname="xgw-sim"):
    """Create the host, its pool and its networks (eth0's and the HIMN), and install the
    network handlers; returns (host ref, pool ref)."""
    from agent.xapisim import network
    network.install(engine)
    host = engine.create("host", name_label=hostname, hostname=hostname, enabled=True,
                         address="127.0.0.1", API_version_major=API_VERSION[0],
                         API_version_minor=API_VERSION[1], API_version_vendor="XenServer")
    pool = engine.create("pool", name_label="", master=host)
    network.seed(engine, host)
    return host, pool
