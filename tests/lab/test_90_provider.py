"""Provider mode: the whole guide on the lab's mail host reached as a rented server (an SSH alias, a user with
``sudo -n``, DNS through a caching resolver and a registrar, a certificate from an ACME CA by certbot), headless
with a params file, every check green; then moving in (from a cloud account) and backups (to a backup host) the
same way; bad input refused before the server changes; a forced renewal serves the new certificate on every port
without dropping a delivery.

trixie only (bookworm keeps the lab path green in the other lab tests). Starts from a fresh provider host and leaves
a fresh plain one (provider mode off), so no other test sees it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailkit.lab import backup_host, cloud_provider, provider
from mailkit.lab.lab import Lab
from mailkit.lab.lab_target import lab_connection
from mailkit.lab.layout import HOSTS
from mailkit.status import sending

pytestmark = pytest.mark.lab
MAIL = HOSTS["mail"]
#: What only a lab has, skipped on a rented server with the reason shown (never an exception).
LAB_ONLY_ROWS = {
    "SPF, DKIM and DMARC at another provider",
    "a forged From: alice@example.org is delivered (p=none only reports)",
    "a forged From: alice@example.org is refused",
    "mail signed with s202612 verifies at another provider",
    "mail signed with the retired s202611 no longer verifies",
    "a client talking before the greeting is dropped",
    "a sender on a block list is refused, the list named",
    "a password guesser is banned",  # a guesser needs a second outside address: a lab has them to spare
}
#: What the rented server's parameters do not ask for: part 3's relay (section 8), as port 25 is open here.
NOT_ASKED_ROWS = {"sending through a relay"}
#: Run on the outside host: a delivery that stops half way through DATA until the flag file appears.
SLOW_DELIVERY = """
import json, os, smtplib, ssl, sys, time
host, flag = sys.argv[1], sys.argv[2]
c = smtplib.SMTP(host, 25, local_hostname="outside.example.net", timeout=60)
c.starttls(context=ssl.create_default_context())
c.ehlo()  # again, over TLS
out = {"tls": c.sock.version(), "mail": c.mail("dana@example.net")[0], "rcpt": c.rcpt("alice@example.org")[0]}
c.putcmd("data")
out["354"] = c.getreply()[0]
c.send(b"From: dana@example.net\\r\\nTo: alice@example.org\\r\\nSubject: renewal\\r\\n\\r\\nFirst half.\\r\\n")
open(flag + ".started", "w").write(json.dumps(out))
deadline = time.time() + 300
while not os.path.exists(flag) and time.time() < deadline:
    time.sleep(0.2)
c.send(b"Second half, after the renewal.\\r\\n.\\r\\n")
code, said = c.getreply()
out["data"] = [code, said.decode(errors="replace")]
c.quit()
print(json.dumps(out))
"""
#: The six ports that serve the certificate once parts 1-4 are applied, and how each starts TLS.
TLS_PORTS = {25: "smtp", 587: "smtp", 465: "", 143: "imap", 993: "", 4190: "sieve"}


@pytest.fixture(scope="module")
def rented(lab: Lab) -> Iterator[dict[str, str]]:
    """A fresh mail host as a provider hands it over; the environment of ``provider/env``."""
    if lab.status()["release"] != "trixie":
        pytest.skip("provider mode is tested on trixie")
    lab.provider_up()
    lab.reset()
    yield provider.environment(lab)
    lab.provider_down()
    lab.reset()


def _mailkit(args: list[str], env: dict[str, str], timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "mailkit.cli", *args]
    return subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env}, timeout=timeout, check=False)


def _error_line(stderr: str) -> str:
    """The one error line (progress lines go to stderr too); an assertion error when there is not exactly one."""
    errors = [line for line in stderr.splitlines() if line.startswith("mailkit: error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def _untouched() -> str:
    with lab_connection("mail") as mail:
        script = "dpkg -l | grep -cE 'postfix|dovecot|certbot'; ls /etc/postfix 2>&1"
        return mail.run(["sh", "-c", script], check=False).stdout


def test_bad_input_is_one_line_and_changes_nothing(rented: dict[str, str], lab: Lab, tmp_path: Path) -> None:
    folder = provider.folder(lab)
    before = _untouched()
    bad = tmp_path / "bad.json"
    for params, named in (
        ({"DOMIAN": "example.org"}, "unknown name 'DOMIAN'"),
        ({"DOMAIN": "example.org\nmydestination = x"}, "DOMAIN"),
        ({"DOMAIN": "example.org", "MAILBOXES": ["alice"]}, "MAILBOXES"),
    ):
        bad.write_text(json.dumps(params))
        done = _mailkit(["guide", "run", "--host", provider.ALIAS, "--params", str(bad), "--passwords",
                         str(folder / "passwords")], rented)  # fmt: skip
        assert done.returncode == 2 and _error_line(done.stderr).count(named) == 1, done.stderr
    with lab_connection("mail") as mail:  # the provider's sudo now wants a password
        mail.run(["sed", "-i", "s/NOPASSWD: //", f"/etc/sudoers.d/{provider.ADMIN}"])
    try:
        done = _mailkit(["guide", "run", "--host", provider.ALIAS, "--params", str(folder / "params.json"),
                         "--passwords", str(folder / "passwords")], rented)  # fmt: skip
    finally:
        provider.prepare_mail_host(lab, lambda _: None)  # the sudoers line as the provider wrote it
    assert done.returncode == 2, done.stdout + done.stderr
    assert "'sudo -n' refused" in _error_line(done.stderr), done.stderr
    assert _untouched() == before, "nothing reached the server"


@pytest.fixture(scope="module")
def guided(rented: dict[str, str], lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, float]:
    """The guide, parts 1-4, run headless on the rented server: its output and how long it took."""
    folder = provider.folder(lab)
    start = time.monotonic()
    done = _mailkit(["guide", "run", "--host", provider.ALIAS, "--params", str(folder / "params.json"),
                     "--passwords", str(folder / "passwords"), "--output", str(tmp_path_factory.mktemp("out"))],
                    rented)  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    return done.stdout, time.monotonic() - start


def test_the_whole_guide_runs_on_the_rented_server(guided: tuple[str, float]) -> None:
    output, seconds = guided
    summary = re.search(r"^(\d+) passed, (\d+) failed, (\d+) skipped \(mail-vps\)$", output, re.M)
    assert summary and summary[2] == "0" and int(summary[1]) > 200, output[-2000:]
    # A row is "skip  GROUP  NAME  REASON", the columns two spaces or more apart.
    skipped = {re.split(r"\s{2,}", line.strip())[2] for line in output.splitlines() if line.startswith("skip ")}
    assert skipped == LAB_ONLY_ROWS | NOT_ASKED_ROWS
    print(f"provider mode, parts 1-4: {seconds:.0f} s, {summary[0]}")
    with lab_connection("mail") as mail:
        lineage = mail.run(["certbot", "certificates"]).stdout
        resolver = mail.run(["cat", "/etc/resolv.conf"]).stdout
    # Handed over with the provider's resolver, the server asks its own since part 3 section 13 (DANE).
    assert f"Domains: {MAIL.fqdn}" in lineage and "nameserver 127.0.0.1\n" in resolver
    assert provider.RESOLVER not in resolver


def test_moving_in_and_backups_run_on_the_rented_server(
    guided: tuple[str, float], rented: dict[str, str], lab: Lab, tmp_path: Path
) -> None:
    """Chapters 6 and 7 the way a reader runs them on their own server: the same params and passwords files, the old
    account's app password among the passwords, the backup host's key pinned from the params, the server's key
    handed to the backup host by the reader's command (MAILKIT_BACKUP_AUTHORIZE), never by the lab."""
    folder = provider.folder(lab)
    with lab_connection("outside") as outside:  # the backup host as its provider hands it over: no key yet
        assert outside.run(["cat", f"{backup_host.HOME}/.ssh/authorized_keys"]).stdout == ""
    done = _mailkit(["guide", "run", "--host", provider.ALIAS, "--parts", "6,7",
                     "--params", str(folder / "params.json"), "--passwords", str(folder / "passwords"),
                     "--output", str(tmp_path)], rented)  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    summary = re.search(r"^(\d+) passed, (\d+) failed, (\d+) skipped \(mail-vps\)$", done.stdout, re.M)
    assert summary and summary[2] == "0" and summary[3] == "0" and int(summary[1]) >= 10, done.stdout[-3000:]
    moving_in = (tmp_path / "06-moving-in.ipynb").read_text()
    assert "mailkit cannot send to your old account from here" in moving_in, "the straggler is the lab's alone"
    with lab_connection("outside") as outside:
        keys = outside.run(["cat", f"{backup_host.HOME}/.ssh/authorized_keys"]).stdout.splitlines()
        archives = outside.run(["find", f"{backup_host.HOME}/{MAIL.fqdn}", "-maxdepth", "1", "-name", "config"])
    assert len(keys) == 1 and keys[0].startswith('command="borg serve --append-only '), keys
    assert archives.stdout.strip(), "the repository was made at the backup host"


def test_mailkit_check_of_the_rented_server_and_the_message_read_back_at_another_provider(
    guided: tuple[str, float], rented: dict[str, str], lab: Lab
) -> None:
    """``mailkit check`` as a reader runs it on their own server: from their second machine, through the provider's
    resolver and the lab's root key, the ACME CA trusted as Let's Encrypt's is; the opt-in row sends one message to
    an address of theirs at another provider and reads it back there over IMAPS (its password in the passwords
    file), its block lists named as the guide's were. Every row green but pending updates; the DNSSEC, DANE, TLS,
    TLS-RPT and own-resolver rows read the rented server as they read a lab host."""
    passwords = {"MAILKIT_PASSWORDS_FILE": str(provider.folder(lab) / "passwords")}
    params = json.loads((provider.folder(lab) / "params.json").read_text())
    asked = ["--send-to", provider.READER, "--read-at", cloud_provider.HOST]
    lists = [arg for blocklist in params["BLOCKLISTS"] for arg in ("--blocklist", blocklist)]  # as the guide's
    done = _mailkit(["check", "--host", provider.ALIAS, "--from", provider.PROBE_ALIAS, "--json", *lists, *asked],
                    {**rented, **passwords})  # fmt: skip
    assert done.stdout.startswith("{"), done.stderr[-3000:]
    rows = json.loads(done.stdout)["rows"]
    red = [f"{r['group']} / {r['name']}: {r['detail']}" for r in rows if not r["ok"] and not r.get("skipped")]
    assert all(line.startswith("updates / security updates pending") for line in red), "\n".join(red)
    keys = {f"{r['group']} / {r['name']}": r for r in rows}
    sent = keys[f"{sending.GROUP} / {sending.NAME}"]
    assert sent["ok"] and sent["detail"].endswith("spf=pass, dkim=pass (example.org), dmarc=pass"), sent
    for row in (
        "dane / Postfix on the server verifies example.org by DANE (its own resolver)",
        f"dane / TLSA of {MAIL.fqdn} names the key it serves on 25 (DANE)",
        "dnssec / MX of example.org signed (DNSSEC)",
        "tls / no Diffie-Hellman group under 2048 bits on 25 (198.51.100.25)",
        "tls-rpt / TLS-RPT reports of example.org say senders reach you over TLS",
    ):
        assert keys[row]["ok"], keys.get(row)


def _served_serials(outside_names: dict[int, str]) -> dict[int, str]:
    """The serial of the certificate each port serves, read with openssl from the outside host."""
    script = (
        'for p in "$@"; do port=${p%%:*}; how=${p#*:}; '
        'opts=""; [ -n "$how" ] && opts="-starttls $how"; '
        f'echo "$port $(openssl s_client -connect {MAIL.fqdn}:$port -servername {MAIL.fqdn} $opts </dev/null '
        '2>/dev/null | openssl x509 -noout -serial)"; done'
    )
    with lab_connection("outside") as outside:
        said = outside.run(["sh", "-c", script, "sh", *(f"{p}:{h}" for p, h in outside_names.items())]).stdout
    return {int(line.split()[0]): line.split(None, 1)[1].strip() for line in said.splitlines() if line.strip()}


def test_a_forced_renewal_is_served_everywhere_without_dropping_a_delivery(guided: tuple[str, float]) -> None:
    before = _served_serials(TLS_PORTS)
    assert len(set(before.values())) == 1 and "serial=" in before[25], before

    # A delivery from the outside host that is half way through DATA while certbot renews and the services reload.
    flag = "/tmp/mailkit-renewed"
    delivery: dict[str, str] = {}

    def deliver() -> None:
        with lab_connection("outside") as outside:
            outside.run(["rm", "-f", flag, f"{flag}.started"])
            ran = outside.run(["python3", "-c", SLOW_DELIVERY, MAIL.fqdn, flag], timeout=400, check=False)
            delivery["said"], delivery["error"] = ran.stdout, ran.stderr[-2000:]

    sender = threading.Thread(target=deliver)
    sender.start()
    with lab_connection("outside") as outside:
        deadline = time.monotonic() + 60
        while not (started := outside.run(["cat", f"{flag}.started"], check=False).stdout):
            assert time.monotonic() < deadline and sender.is_alive(), f"the delivery never reached DATA: {delivery}"
            time.sleep(0.5)
        assert json.loads(started)["354"] == 354, started
        start = time.monotonic()
        with lab_connection("mail") as mail:
            mail.run(["certbot", "renew", "--force-renewal", "--no-random-sleep-on-renew"], timeout=300)
        renewal = time.monotonic() - start
        outside.run(["touch", flag])
    sender.join(timeout=120)
    assert delivery.get("said"), delivery
    replies = json.loads(delivery["said"])
    assert replies["tls"] and replies["data"][0] == 250, replies

    after = _served_serials(TLS_PORTS)
    with lab_connection("mail") as mail:
        newest = mail.run(
            ["openssl", "x509", "-noout", "-serial", "-in", f"/etc/letsencrypt/live/{MAIL.fqdn}/cert.pem"]
        )
    assert set(after.values()) == {newest.stdout.strip()}, after
    assert after[25] != before[25]
    print(f"forced renewal: {renewal:.1f} s; every port serves {after[25]}")
