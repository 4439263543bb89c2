"""Declarative topologies: a host's networks (with their gateways) and VMs described in
one YAML or JSON file, applied and re-applied safely through the service layer.

- ``model``: parse and validate a topology document (pure; ``load`` reads a file);
- ``plan``: compare it with what XAPI has, as an ordered list of actions;
- ``apply``: carry the plan out step by step (``apply``), or remove what a topology made
  (``destroy``);
- ``diagram``: the host's networks and VMs as Mermaid or Graphviz text.

What a topology manages is marked in XAPI: other_config ``xapi-gateway-topology`` = the
topology's name, on its networks and VMs. Nothing without that mark is ever changed.
"""
