"""xapi-gateway: NAT gateways for the xapi* bridges of a XenServer / XCP-ng host."""
__version__ = "0.1.0"
