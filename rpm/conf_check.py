#!/usr/bin/env python3
"""Does rpm/agent.conf document every option of ``xapi-gateway-agent --help-config``,
each with an explanation line above it and its default?

    python3 rpm/conf_check.py HELP_CONFIG_OUTPUT AGENT_CONF

Prints the problems (or a count of the options) and exits 1 when there are problems.
rpm/check runs it on the installed daemon's output and the shipped file; the unit tests
(tests/unit/test_rpm_conf.py) run it on the source tree, so a new option without its line
here fails there first.
"""
import re, sys
reference, documented, section = {}, {}, None
for line in open(sys.argv[1]):
    m = re.match(r"\[([^\]]+)\]", line)
    if m:
        section = m.group(1)
        reference[section] = []
        continue
    words = line.split()
    if section and len(words) >= 3 and words[1] == "default":
        reference[section].append((words[0], words[2]))
previous = ""
for line in open(sys.argv[2]):
    line = line.rstrip("\n")
    m = re.match(r"#?\[([^\]]+)\]\s*$", line)
    if m:
        section = "gateway:NAME" if m.group(1).startswith("gateway:") else m.group(1)
        documented.setdefault(section, {})
    m = re.match(r"#([a-z_]+) =(?: (.*))?$", line)
    if m:
        documented.setdefault(section, {})[m.group(1)] = (m.group(2) or "", previous.startswith("# "))
    previous = line
TRUE, FALSE = ("1", "yes", "true", "on"), ("0", "no", "false", "off")
def same(ref, have):
    if ref == '""':
        return have == ""
    if ref.lower() in TRUE + FALSE:
        return (ref.lower() in TRUE) == (have.lower() in TRUE) and have.lower() in TRUE + FALSE
    try:
        return float(ref) == float(have)
    except ValueError:
        return ref == have
problems = []
for section, options in reference.items():
    for key, default in options:
        if key not in documented.get(section, {}):
            problems.append("[%s] %s (default %s) is missing" % (section, key, default))
            continue
        have, explained = documented[section][key]
        if not explained:
            problems.append("[%s] %s has no '# explanation' line above it" % (section, key))
        # (required) and (none): the value shown is an example, not a default.
        if default not in ("(required)", "(none)") and not same(default, have):
            problems.append("[%s] %s: agent.conf says %r, the default is %s" % (section, key, have, default))
    for key in documented.get(section, {}):
        if key not in dict(options):
            problems.append("[%s] %s is documented but --help-config does not know it" % (section, key))
for section in documented:
    if section not in reference:
        problems.append("section [%s] is documented but --help-config does not know it" % section)
print("; ".join(problems) or "%d options in %d sections" % (sum(map(len, reference.values())), len(reference)))
sys.exit(1 if problems else 0)
