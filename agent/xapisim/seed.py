"""What every XenServer has before anyone logs in: one host and its pool.

(The XenAPI SDK reads the pool's master and the host's API version right after login.)
Storage: a local ext SR (the pool's default) and an ISO library with ISOs in it.
"""

import datetime

API_VERSION = (2, 21)  # XenServer 8 / XCP-ng 8.3
HOST_MEMORY = 64 * 1024 ** 3
DOM0_MEMORY = 1024 ** 3


def software_version(hostname, network_backend):
    """host.software_version with the keys xapi writes (xapi_globs.ml software_version,
    create_misc.ml make_software_version), with the values of an XCP-ng 8.3 host on
    ``network_backend`` (openvswitch or bridge)."""
    return {
        "product_version": "8.3.0", "product_version_text": "8.3",
        "product_version_text_short": "8.3", "platform_name": "XCP",
        "platform_version": "3.4.0", "product_brand": "XCP-ng", "xapi": "24.19",
        "xapi_build": "24.19.2", "build_number": "cloud", "git_id": "0",
        "hostname": hostname, "date": "2024-10-01", "xen": "4.17.5-3",
        "linux": "4.19.0+1", "xencenter_min": "%d.%d" % API_VERSION,
        "xencenter_max": "%d.%d" % API_VERSION, "network_backend": network_backend,
        "db_schema": "5.775",
    }


def seed(engine, hostname="xgw-sim", bridges=None, isos=None):
    """Create the host, its pool, its networks (eth0's and the HIMN) and the "Other
    install media" template, its SRs (``isos`` names the ISOs of the library), and
    install the network, VM and storage handlers; ``bridges`` (an
    agent.xapisim.bridges.Bridges) makes private networks' bridges for real. Returns
    (host ref, pool ref)."""
    from agent.xapisim import network, pool as members, storage, tunnels, vms
    from agent.xapisim.bridges import BACKENDS, Bridges
    network.install(engine)
    members.install(engine)
    tunnels.install(engine)
    bridges = bridges or Bridges()
    vms.install(engine, bridges)
    storage.install(engine)
    metrics = engine.create("host_metrics", live=True, memory_total=HOST_MEMORY,
                            memory_free=HOST_MEMORY - DOM0_MEMORY,
                            last_updated=datetime.datetime.utcnow().replace(microsecond=0))
    host = engine.create("host", name_label=hostname, hostname=hostname, enabled=True,
                         address="127.0.0.1", API_version_major=API_VERSION[0],
                         API_version_minor=API_VERSION[1], API_version_vendor="XenServer",
                         software_version=software_version(
                             hostname, bridges.backend or BACKENDS[0]), metrics=metrics,
                         edition="xcp-ng", name_description="Default install")
    pool = engine.create("pool", name_label="", master=host)
    network.seed(engine, host)
    vms.seed(engine, host)
    storage.seed(engine, host, storage.DEFAULT_ISOS if isos is None else isos)
    return host, pool
