"""Exit 0 if every NAME==VERSION (or bare NAME) given is installed in this python at that version (local
suffixes such as +cu130 ignored), else 1. Used by the venv scripts to skip reinstalling."""
import sys
from importlib import metadata

ok = True
for spec in sys.argv[1:]:
    name, _, ver = spec.partition("==")
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        ok = False
        continue
    if ver and have.split("+")[0] != ver:
        ok = False
sys.exit(0 if ok else 1)
