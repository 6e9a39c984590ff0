"""A secrets scan: no password, hash, private key or TSIG secret in any notebook or any plan the guide prints.

Runs after the notebooks (tests/lab/test_30), so the lab holds the real secrets to look for: the lab
mailboxes' passwords, their hashes in Dovecot's passwd-file, rspamd's controller password hash, the DKIM
and TLS private keys, and the lab DNS's TSIG key.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailkit.core import engine
from mailkit.core.context import host_facts
from mailkit.core.mail_layout import LAYOUT
from mailkit.core.ssh import Connection
from mailkit.guide.part1 import Part1
from mailkit.guide.part2 import Part2
from mailkit.guide.part3 import DKIM_DIR, Part3
from mailkit.guide.part4 import CONTROLLER_PASSWORD, Part4
from mailkit.lab.lab import Lab
from mailkit.lab.lab_target import lab_connection
from mailkit.server.target import target_of

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
MAILBOXES = ["alice@example.org", "bob@example.org", "carol@b.example.org"]


@pytest.fixture(scope="module")
def mail(finished: Lab) -> Iterator[Connection]:
    conn = lab_connection("mail")
    yield conn
    conn.close()


def _secrets(lab: Lab, mail: Connection) -> dict[str, str]:
    """Each secret the lab holds, by name (long ones cut to a distinctive 32-character piece)."""
    found = {f"password of {m}": p.reveal() for m, p in target_of("lab:mail").passwords(MAILBOXES).items()}
    found["TSIG secret"] = lab.tsig_secret()
    for line in mail.run(["cat", LAYOUT.passwd_file]).stdout.splitlines():
        if line and not line.startswith("#"):
            user, hashed = line.split(":")[:2]
            found[f"hash of {user}"] = hashed
    found["rspamd controller hash"] = mail.run(["cat", CONTROLLER_PASSWORD]).stdout.split('"')[1]
    keys = mail.run(["sh", "-c", f"ls {DKIM_DIR}/*.key /etc/ssl/private/*.key"]).stdout.split()
    for path in keys:
        pem = mail.run(["cat", path]).stdout
        body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
        found[f"private key {path}"] = body[64:96]
    assert len(found) >= 3 + 1 + 3 + 1 + 2, f"expected every kind of secret in the lab, found {sorted(found)}"
    return found


def _texts() -> dict[str, str]:
    texts = {}
    for path in [*sorted((ROOT / "notebooks").glob("*.ipynb")), *sorted((ROOT / "out").glob("**/*.ipynb"))]:
        texts[str(path.relative_to(ROOT))] = path.read_text()
    return texts


def test_no_secret_in_any_notebook_or_plan(lab: Lab, mail: Connection) -> None:
    secrets = _secrets(lab, mail)
    texts = _texts()
    part1 = Part1("example.org", ["b.example.org"], mailboxes=MAILBOXES)
    part2 = Part2(part1, target_of("lab:mail").passwords([*MAILBOXES, "dave@example.org"]))
    part4 = Part4(Part3(part1), part2, offline=True)
    facts = host_facts(mail)
    # Plans that would have to show a secret if redaction failed: a new user's password, a new TLS key.
    new_key = base64.b64encode(b"not a real key, but secret all the same " * 4)
    plans = {
        "part 2 with a new mailbox": engine.plan(
            mail, Part2(Part1(mailboxes=[*MAILBOXES, "dave@example.org"]), part2.passwords).users()
        ),
        "part 2 with a new key": engine.plan(mail, part2.certificate(b"chain", new_key)),
        "part 4": engine.plan(mail, part4.everything(facts)),
    }
    for name, plan in plans.items():
        texts[f"plan: {name}"] = str(plan) + plan._repr_html_()
    secrets["the new key"] = new_key.decode()[:32]
    secrets["dave's password"] = part2.passwords["dave@example.org"].reveal()
    leaks = [(where, what) for where, text in texts.items() for what, secret in secrets.items() if secret in text]
    assert not leaks, f"secrets found: {leaks}"
    assert any(name.startswith("notebooks/04") for name in texts) and len(texts) >= 7
    assert "<new hash, made on the host>" in texts["plan: part 2 with a new mailbox"], "the plan says a hash is made"
    assert json.loads((ROOT / "notebooks" / "02-dovecot.ipynb").read_text())["cells"], "notebooks were read"
