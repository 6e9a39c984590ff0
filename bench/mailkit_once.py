"""One mailkit apply of the benchmark workload, as a whole process (imports, connection, apply).

Run:  .venv/bin/python bench/mailkit_once.py apply|remove
``apply`` makes the host match the workload (including its two removals); ``remove`` takes it all away.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from workload import DIRECTORY, OBSOLETE, REMOVED_SETTING, SETTINGS, files, tables

from mailkit.core import engine
from mailkit.core.resources import Directory, File, LookupTable, Postconf, Resource
from mailkit.core.ssh import Connection

SSH_CONFIG = Path("/var/lib/mailkit/lab/ssh_config")


def resources(present: bool = True) -> list[Resource]:
    """The workload as mailkit resources; ``present=False`` removes every part of it."""
    made: list[Resource] = [Directory(DIRECTORY)] if present else []
    made += [File(path, content, service="postfix", present=present) for path, content in files().items()]
    made += [LookupTable(path, content, present=present) for path, content in tables().items()]
    made.append(File(OBSOLETE, present=False))
    made.append(Postconf({**(SETTINGS if present else dict.fromkeys(SETTINGS)), REMOVED_SETTING: None}))
    return made if present else [*made, Directory(DIRECTORY, present=False)]


def main() -> None:
    with Connection("mail.example.org", ssh_config=SSH_CONFIG) as conn:
        engine.apply(conn, resources(sys.argv[1:] != ["remove"]))


if __name__ == "__main__":
    main()
