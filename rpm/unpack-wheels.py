#!/usr/bin/python3
"""Unpack the vendored wheels into the RPM's private site-packages (run by the spec's %install).

    python3 unpack-wheels.py --manifest wheels/vendored.txt --target DIR

A wheel is a zip of files meant for site-packages; unpacking one is all `pip install
--target` does for these (no console scripts, headers or data are needed from them). This
does it with the standard library alone, so %install needs no pip: EL7's python3-pip (9.0)
does not know manylinux2014 wheels, and Debian's pip would judge the tags against its own
Python. It refuses a wheel missing from the manifest, a sha256 that differs from the one
rpm/vendor.py recorded, a path escaping DIR, and two wheels writing the same file.

Python 3.6 and standard library only: it runs with the build root's /usr/bin/python3.
"""
import argparse
import hashlib
import os
import sys
import zipfile


def fail(message):
    sys.stderr.write("unpack-wheels: error: %s\n" % message)
    sys.exit(1)


def read_manifest(path):
    """{wheel file name: sha256} from vendored.txt."""
    wheels = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            _spec, filename, digest = line.split()
            wheels[filename] = digest.split(":", 1)[1]
    return wheels


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def destination(member):
    """Where a zip member goes, relative to the target; None to skip it."""
    parts = member.split("/")
    if member.startswith("/") or ".." in parts or "\\" in member:
        fail("unsafe path in wheel: %r" % member)
    if parts[0].endswith(".data"):
        # <name>.data/purelib|platlib/... belong in site-packages; scripts, headers and
        # data are not used by the agent.
        if len(parts) > 2 and parts[1] in ("purelib", "platlib"):
            return "/".join(parts[2:])
        return None
    return member


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", required=True, help="vendored.txt written by rpm/vendor.py")
    parser.add_argument("--target", required=True, help="site-packages directory to fill")
    args = parser.parse_args()

    expected = read_manifest(args.manifest)
    wheel_dir = os.path.dirname(os.path.abspath(args.manifest))
    present = sorted(n for n in os.listdir(wheel_dir) if n.endswith(".whl"))
    extra = sorted(set(present) - set(expected))
    missing = sorted(set(expected) - set(present))
    if extra or missing:
        fail("wheels and manifest differ: not listed %s, missing %s" % (extra, missing))

    owner = {}  # relative path -> wheel that wrote it
    os.makedirs(args.target, exist_ok=True)
    for name in present:
        path = os.path.join(wheel_dir, name)
        if sha256(path) != expected[name]:
            fail("%s: sha256 differs from %s" % (name, args.manifest))
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.filename.endswith("/"):
                    continue
                rel = destination(info.filename)
                if rel is None:
                    continue
                if rel in owner:
                    fail("%s and %s both contain %s" % (owner[rel], name, rel))
                owner[rel] = name
                out = os.path.join(args.target, rel)
                os.makedirs(os.path.dirname(out), exist_ok=True)
                with zf.open(info) as src, open(out, "wb") as dst:
                    dst.write(src.read())
                # Keep the executable bit the wheel recorded (shared objects); 0644 otherwise.
                executable = (info.external_attr >> 16) & 0o111
                os.chmod(out, 0o755 if executable or rel.endswith(".so") else 0o644)
    print("unpack-wheels: %d files from %d wheels into %s" % (len(owner), len(present), args.target))


if __name__ == "__main__":
    main()
