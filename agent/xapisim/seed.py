"""What every XenServer has before anyone logs in: one host and its pool.

(The XenAPI SDK reads the pool's master and the host's API version right after login.)
Storage: a local ext SR (the pool's default) and an ISO library with ISOs in it.
"""

API_VERSION = (2, 21)  # XenServer 8 / XCP-ng 8.3


def seed(engine, hostname="xgw-sim", bridges=None, isos=None):
    """Create the host, its pool, its networks (eth0's and the HIMN) and the "Other
    install media" template, its SRs (``isos`` names the ISOs of the library), and
    install the network, VM and storage handlers; ``bridges`` (an
    agent.xapisim.bridges.Bridges) makes private networks' bridges for real. Returns
    (host ref, pool ref)."""
    from agent.xapisim import network, storage, vms
    from agent.xapisim.bridges import Bridges
    network.install(engine)
    vms.install(engine, bridges or Bridges())
    storage.install(engine)
    host = engine.create("host", name_label=hostname, hostname=hostname, enabled=True,
                         address="127.0.0.1", API_version_major=API_VERSION[0],
                         API_version_minor=API_VERSION[1], API_version_vendor="XenServer")
    pool = engine.create("pool", name_label="", master=host)
    network.seed(engine, host)
    vms.seed(engine)
    storage.seed(engine, host, storage.DEFAULT_ISOS if isos is None else isos)
    return host, pool
