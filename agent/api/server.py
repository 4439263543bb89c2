"""Serving the API: always on a root-only Unix socket, on TCP with TLS when configured."""
import logging
import os
import ssl

from aiohttp import web

from agent.api import tokens as tokensmod
from agent.api.app import Api
from agent.api.xapi import Sessions
from agent.errors import ConfigError

log = logging.getLogger(__name__)


def build(config, state):
    """An Api for ``config`` (its [xapi] and [api] sections). The token file is read only
    when TCP is served with tokens; a bad one is a ConfigError."""
    settings = config.api
    tokens = []
    if settings.listen and not settings.insecure:
        tokens = tokensmod.load(settings.tokens)
        if not tokens:
            raise ConfigError("the token file %s has no token: TCP clients could never "
                              "authenticate" % settings.tokens)
    sessions = Sessions(config.xapi.url, config.xapi.username, config.xapi.password,
                        timeout=config.xapi.timeout, long_timeout=config.xapi.long_timeout)
    return Api(sessions, tokens=tokens, state=state, insecure=settings.insecure,
               max_body=settings.max_body, body_timeout=settings.body_timeout)


def tls_context(cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    versions = getattr(ssl, "TLSVersion", None)  # Python 3.7+; 3.6 (Dom0) has the options
    if versions is not None:
        setattr(context, "minimum_version", versions.TLSv1_2)
    else:
        context.options |= ssl.OP_NO_TLSv1 | ssl.OP_NO_TLSv1_1
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("cannot load the API's TLS certificate %s / key %s: %s"
                          % (cert, key, exc))
    return context


async def start(api, socket_path, listen="", ssl_context=None):
    """Serve ``api``; returns the AppRunner (``await runner.cleanup()`` stops it)."""
    runner = web.AppRunner(api.app(), handle_signals=False, access_log=None)
    await runner.setup()
    try:
        directory = os.path.dirname(socket_path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        if os.path.exists(socket_path):
            os.unlink(socket_path)
        old = os.umask(0o177)  # the socket is born root-only, never briefly open
        try:
            await web.UnixSite(runner, socket_path).start()
        finally:
            os.umask(old)
        os.chmod(socket_path, 0o600)
        log.info("API on unix:%s", socket_path)
        if listen:
            host, _, port = listen.rpartition(":")
            await web.TCPSite(runner, host, int(port), ssl_context=ssl_context).start()
            log.info("API on %s://%s%s", "https" if ssl_context else "http", listen,
                     "" if ssl_context else " WITHOUT TLS OR TOKENS (insecure is set)")
    except Exception:
        await runner.cleanup()
        raise
    return runner
