"""xapi-gateway: a self-healing NAT gateway daemon for XenServer / XCP-ng Dom0."""
import io
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))

with io.open(os.path.join(HERE, "agent", "__init__.py"), encoding="utf-8") as f:
    VERSION = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)

with io.open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
    LONG_DESCRIPTION = f.read()

setup(
    name="xapi-gateway",
    version=VERSION,
    description="Turns xapi* bridges of a XenServer / XCP-ng host into self-healing NAT gateways",
    long_description=LONG_DESCRIPTION,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.6",
    packages=find_packages(include=["agent", "agent.*"]),
    # Said outright (it is the default): an editable install (tests/run --prepare) then
    # puts the project directory on sys.path with a plain .pth line instead of setuptools'
    # import-hook finder, whose imports (pathlib, importlib.util...) cost every Python
    # start in that venv ~15 ms: each daemon, xgw and test process, and the start-up the
    # benchmark measures, which an installed daemon does not pay. Wheels are unchanged.
    package_dir={"": "."},
    # The XenAPI datamodel the simulator follows (agent/xapisim/data/README.md says where
    # it comes from); MANIFEST.in puts the same files, and the rest of the tree, in the sdist.
    package_data={"agent.xapisim.data": ["*.json", "*.md"]},
    include_package_data=True,
    zip_safe=False,
    # Every runtime import of agent/, at floors that still install on Python 3.6 (Dom0):
    # requirements/oldest.txt pins exactly these and CI runs the suite against them.
    install_requires=[
        "aiohttp>=3.8.6",  # the HTTP API (daemon) and its client (xgw)
        "pyroute2>=0.7.11",
        # 0.9 imports typing.Literal (Python 3.8+) but does not say so in python_requires:
        # pip would install it on Dom0's 3.6 and the daemon would not start.
        'pyroute2<0.9; python_version < "3.8"',
        "python-iptables>=1.0.1",
        "pyudev>=0.23.2",
        "PyYAML>=6.0.1",  # topology files (agent/topology); JSON ones need nothing
        # OVSDB: one IDL connection (agent/adapters/ovsdb.py); pure Python + sortedcontainers
        "ovs>=4.0.0",
        "XenAPI>=23.8.0",  # the XAPI adapter, the service layer and the simulator's tests
    ],
    extras_require={
        "journal": ["systemd-python>=235"],
    },
    entry_points={
        "console_scripts": [
            "xapi-gateway-agent = agent.daemon.main:main",
            "xgw = agent.cli:main",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3.6",
        "Programming Language :: Python :: 3.12",
        "Operating System :: POSIX :: Linux",
        "Topic :: System :: Networking",
    ],
)
