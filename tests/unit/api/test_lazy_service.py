"""The API's service layer of networks and VMs (the XenAPI SDK, its XML-RPC, xml.dom, the
views) is imported on the first request that reaches XAPI, not with the API: a daemon that
only keeps its gateways never holds it in memory (~1.5 MB resident)."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

# A fresh interpreter: the API served on a Unix socket without XAPI, asked for health,
# the gateways and the networks; which of the heavy modules got imported after each.
SCRIPT = r'''
import asyncio, json, os, sys, tempfile
from aiohttp import web
from agent.api import server
from agent.api.app import State
from agent.core import config as configmod

HEAVY = ("XenAPI", "xmlrpc.client", "xml.dom.minidom", "agent.service.steps",
         "agent.service.views", "agent.service.networks", "agent.service.vms",
         "agent.adapters.xapi")

def heavy():
    return sorted(m for m in HEAVY if m in sys.modules)

async def get(path, url):
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % url).encode())
    data = await reader.read()
    writer.close()
    return int(data.split(b" ", 2)[1])

async def main():
    out = {"imported": heavy()}
    config = configmod.defaults()
    config = config._replace(xapi=config.xapi._replace(url="none"))
    api = server.build(config, State())   # as the daemon builds it
    runner = web.AppRunner(api.app())
    await runner.setup()
    path = os.path.join(tempfile.mkdtemp(), "api.sock")
    await web.UnixSite(runner, path).start()
    out["served"] = heavy()
    for url in ("/v1/health", "/v1/gateways", "/v1/networks", "/v1/vms"):
        out[url] = [await get(path, url), heavy()]
    await runner.cleanup()
    print(json.dumps(out))

asyncio.get_event_loop().run_until_complete(main())
'''


def test_the_service_layer_is_not_imported_with_the_api():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["imported"] == [] and out["served"] == []
    assert out["/v1/health"] == [200, []]
    assert out["/v1/gateways"] == [200, []]
    # without XAPI a network or VM request is refused before the service layer is needed
    assert out["/v1/networks"] == [503, []]
    assert out["/v1/vms"] == [503, []]
