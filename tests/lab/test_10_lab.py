"""The lab on a real Debian release: hosts boot, DNS answers, apt works, SSH is verified."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mailkit.core.errors import CommandError, ConnectionLost, HostKeyError
from mailkit.core.ssh import Connection
from mailkit.lab.lab import Lab
from mailkit.lab.lab_target import lab_connection
from mailkit.lab.layout import HOSTS

pytestmark = pytest.mark.lab


def _mailkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailkit.cli", *args], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("host", list(HOSTS))
def test_systemd_is_running_on_each_host(lab: Lab, host: str) -> None:
    with lab_connection(host) as conn:
        state = conn.run(["systemctl", "is-system-running", "--wait"], check=False).stdout.strip()
        failed = conn.run(["systemctl", "--failed", "--no-legend", "--plain"], check=False).stdout
    assert state == "running", f"{host} is {state}; failed units: {failed}"


def test_each_host_runs_the_requested_release(lab: Lab) -> None:
    release = lab.status()["release"]
    for host in HOSTS:
        with lab_connection(host) as conn:
            os_release = conn.read("/etc/os-release").decode()
        codename = "forky" if release == "sid" else release
        assert f"VERSION_CODENAME={codename}" in os_release or release == "sid"


def test_mail_is_a_fresh_server(lab: Lab) -> None:
    lab.reset()  # what the lab hands over after a reset, whatever ran before
    with lab_connection("mail") as mail:
        for package in ("postfix", "dovecot-core", "bind9"):
            state = mail.run(["dpkg-query", "-W", "-f=${Status}", package], check=False)
            assert "install ok installed" not in state.stdout, f"{package} must not be preinstalled"
        assert mail.run(["hostname", "-f"]).stdout.strip() == "mail.example.org"


def test_mail_resolves_forward_and_reverse_from_outside(lab: Lab) -> None:
    mail = HOSTS["mail"]
    with lab_connection("outside") as outside:
        assert outside.run(["dig", "+short", mail.fqdn, "A"]).stdout.strip() == mail.address
        assert outside.run(["dig", "+short", mail.fqdn, "AAAA"]).stdout.strip() == mail.address6
        assert outside.run(["dig", "+short", "-x", mail.address]).stdout.strip() == mail.fqdn + "."
        assert outside.run(["dig", "+short", "example.org", "MX"]).stdout.strip() == "10 mail.example.org."
        assert outside.run(["dig", "+short", "b.example.org", "MX"]).stdout.strip() == "10 mail.example.org."
        # A name outside the lab is answered at once (authoritative NXDOMAIN), not after a time-out.
        missing = outside.run(["dig", "+tries=1", "+time=2", "www.example.com", "A"]).stdout
        assert "status: NXDOMAIN" in missing
        # The system resolver (what Postfix and swaks use) agrees.
        assert outside.run(["getent", "ahostsv4", mail.fqdn]).stdout.split()[0] == mail.address


def test_outside_swaks_can_do_tls_and_auth_and_has_its_extra_addresses(lab: Lab) -> None:
    """A reader typing the guide's swaks commands by hand on the outside host gets TLS and AUTH."""
    with lab_connection("outside") as outside:
        support = outside.run(["swaks", "--support"], check=False)
        text = support.stdout + support.stderr
        assert {"TLS supported", "Basic AUTH supported", "MX Routing supported"} <= set(
            text.replace("=== ", "\n").splitlines()
        ), text
        addresses = outside.run(["ip", "-4", "-o", "addr", "show", "eth0"]).stdout
        for extra in HOSTS["outside"].extra_addresses:
            assert f" {extra}/24 " in addresses


def test_dns_records_change_without_restarting_the_server(lab: Lab) -> None:
    with lab_connection("dns") as dns_host:
        before = dns_host.run(["systemctl", "show", "-p", "MainPID", "--value", "named"]).stdout.strip()
    lab.set_dns_records("_dmarc.example.org", "TXT", ['"v=DMARC1; p=none"'])
    lab.set_dns_records("mail.b.example.org", "A", ["198.51.100.25"])
    with lab_connection("outside") as outside:
        assert outside.run(["dig", "+short", "_dmarc.example.org", "TXT"]).stdout.strip() == '"v=DMARC1; p=none"'
        assert outside.run(["dig", "+short", "mail.b.example.org", "A"]).stdout.strip() == "198.51.100.25"
        lab.set_dns_records("mail.b.example.org", "A", [])
        assert outside.run(["dig", "+short", "mail.b.example.org", "A"]).stdout.strip() == ""
    with lab_connection("dns") as dns_host:
        after = dns_host.run(["systemctl", "show", "-p", "MainPID", "--value", "named"]).stdout.strip()
    assert before == after != "0"


def test_dns_refuses_updates_without_the_key(lab: Lab) -> None:
    import dns.query
    import dns.rcode
    import dns.update

    update = dns.update.Update("example.org.")
    update.replace("evil.example.org.", 300, "A", "198.51.100.66")
    response = dns.query.tcp(update, HOSTS["dns"].address, timeout=5)
    assert response.rcode() == dns.rcode.REFUSED


def test_apt_installs_through_the_proxy(lab: Lab) -> None:
    with lab_connection("mail") as mail:
        mail.run(["apt-get", "update", "-q"], timeout=300)
        mail.run(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "hello"], timeout=300)
        assert mail.run(["hello"]).stdout.strip() == "Hello, world!"


def test_proxy_serves_only_the_debian_archive(lab: Lab) -> None:
    proxy = "http://198.51.100.1:3142"
    with lab_connection("outside") as outside:

        def status(url: str) -> str:
            argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-x", proxy, url]
            return outside.run(argv, check=False).stdout

        release = lab.status()["release"]
        assert status(f"http://deb.debian.org/debian/dists/{release}/Release") == "200"
        assert status("http://www.example.com/") in ("403", "503")
        # No route out except through the proxy: a direct connection fails.
        direct = outside.run(["curl", "-s", "-m", "3", "http://deb.debian.org/"], check=False)
        assert direct.failed


def test_connection_runs_reads_and_writes(lab: Lab) -> None:
    with lab_connection("mail") as mail:
        echoed = mail.run(["printf", "%s|", "a b", "$HOME", "it's", "`id`", "x;y"]).stdout
        assert echoed == "a b|$HOME|it's|`id`|x;y|"
        assert mail.run(["cat"], input="through stdin\n").stdout == "through stdin\n"
        payload = bytes(range(256)) * 64
        mail.write("/root/mailkit-test.bin", payload, mode=0o600)
        assert mail.read("/root/mailkit-test.bin") == payload
        mode = mail.run(["stat", "-c", "%a %U", "/root/mailkit-test.bin"]).stdout.strip()
        assert mode == "600 root"
        with pytest.raises(CommandError) as caught:
            mail.run(["sh", "-c", "echo oops >&2; exit 3"])
        assert caught.value.result.exited == 3
        assert caught.value.result.stderr == "oops\n"
        assert mail.run(["false"], check=False).exited == 1


def test_connection_reconnects_once_after_the_transport_drops(lab: Lab) -> None:
    with lab_connection("mail") as mail:
        mail.run(["true"])
        # Kill this connection's own sshd session process: the transport drops under us, and the
        # command that was running reports it (it is not retried: it may have had effects).
        with pytest.raises(ConnectionLost):
            mail.run(["sh", "-c", "kill -9 $PPID"], check=False)
        assert mail.run(["echo", "back"]).stdout == "back\n"


def test_a_non_root_login_runs_reads_and_writes_through_sudo(lab: Lab, tmp_path) -> None:
    setup = (
        "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q sudo >/dev/null && "
        "(id admin >/dev/null 2>&1 || useradd -m -s /bin/bash admin) && "
        "install -d -m 700 -o admin -g admin /home/admin/.ssh && "
        "install -m 600 -o admin -g admin /root/.ssh/authorized_keys /home/admin/.ssh/authorized_keys && "
        "echo 'admin ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/admin && chmod 440 /etc/sudoers.d/admin"
    )
    with lab_connection("mail") as root:
        root.run(["sh", "-c", setup], timeout=300)
        mail = HOSTS["mail"]
        admin = Connection(
            mail.address,
            user="admin",
            key_file=lab.client_key,
            known_hosts=lab.known_hosts,
            ssh_config=tmp_path / "none",
        )
        with admin:
            assert admin.sudo, "a non-root login uses sudo by default"
            assert admin.run(["id", "-un"]).stdout.strip() == "root"
            assert admin.run(["id", "-un"], sudo=False).stdout.strip() == "admin"
            admin.write("/etc/mailkit-sudo-test", b"written through sudo\n", mode=0o640)
            assert admin.read("/etc/mailkit-sudo-test") == b"written through sudo\n"
        assert root.run(["stat", "-c", "%a %U", "/etc/mailkit-sudo-test"]).stdout.strip() == "640 root"


def test_wrong_host_key_is_refused(lab: Lab, tmp_path) -> None:
    mail = HOSTS["mail"]
    wrong = tmp_path / "known_hosts"
    other = lab.host_key("outside").with_suffix(".pub").read_text().split()
    wrong.write_text(f"{mail.address} {other[0]} {other[1]}\n")
    conn = Connection(
        mail.address, user="root", key_file=lab.client_key, known_hosts=wrong, ssh_config=tmp_path / "none"
    )
    with pytest.raises(HostKeyError, match="does NOT match"):
        conn.run(["true"])
    empty = tmp_path / "empty"
    empty.write_text("")
    conn = Connection(
        mail.address, user="root", key_file=lab.client_key, known_hosts=empty, ssh_config=tmp_path / "none"
    )
    with pytest.raises(HostKeyError, match="unknown SSH host key"):
        conn.run(["true"])


def test_openssh_client_trusts_the_lab_known_hosts(lab: Lab) -> None:
    argv = ["ssh", "-F", str(lab.ssh_config), "-o", "BatchMode=yes", "mail", "hostname"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "mail"


def test_cli_status_exec_and_up_again(lab: Lab) -> None:
    status = json.loads(_mailkit("lab", "status", "--json").stdout)
    assert status["state"] == "up"
    assert status["release"] == lab.status()["release"]
    assert {h: v["address"] for h, v in status["hosts"].items()} == {h: s.address for h, s in HOSTS.items()}
    assert all(v["running"] for v in status["hosts"].values())
    result = _mailkit("lab", "exec", "mail", "--", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (result.returncode, result.stdout, result.stderr) == (7, "out\n", "err\n")
    again = _mailkit("lab", "up", "--release", status["release"])
    assert again.returncode == 0 and "already up" in again.stdout
    other = "bookworm" if status["release"] != "bookworm" else "trixie"
    clash = _mailkit("lab", "up", "--release", other)
    assert clash.returncode == 2 and "lab down" in clash.stderr


def test_lab_check_passes(lab: Lab) -> None:
    result = _mailkit("lab", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout


def test_reset_gives_a_fresh_mail_host_and_keeps_the_others(lab: Lab) -> None:
    before = {name: host["running"] for name, host in lab.status()["hosts"].items()}
    with lab_connection("outside") as outside:
        outside_boot = outside.run(["cat", "/proc/sys/kernel/random/boot_id"]).stdout
        outside.run(["touch", "/root/kept"])
    with lab_connection("mail") as mail:
        mail.run(["touch", "/root/marker"])
    lab.reset()
    with lab_connection("mail") as mail:
        assert mail.run(["test", "-e", "/root/marker"], check=False).failed
        assert mail.run(["dpkg-query", "-W", "hello"], check=False).failed, "reset must drop installed packages"
    with lab_connection("outside") as outside:
        assert outside.run(["test", "-e", "/root/kept"], check=False).ok
        assert outside.run(["cat", "/proc/sys/kernel/random/boot_id"]).stdout == outside_boot
    assert before == {name: host["running"] for name, host in lab.status()["hosts"].items()}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_memory_per_host_is_measurable(lab: Lab) -> None:
    from mailkit.lab.machine import host_memory_kib

    for spec in HOSTS.values():
        assert 5_000 < host_memory_kib(spec) < 500_000


def test_the_zones_are_signed_and_validate_from_the_labs_root_key(lab: Lab) -> None:
    """BIND signs every zone, the lab publishes each DS in its parent: BIND's own validating lookup (delv), on the
    outside host, follows the chain from the lab's root key; from any other key it fails."""
    from mailkit.lab.dns import NAMESERVER, reverse_name

    _, _, _, tag, algorithm, digest_type, digest = lab.root_anchor().split()

    def anchors(digest_hex: str) -> str:
        return f'trust-anchors {{ . static-ds {tag} {algorithm} {digest_type} "{digest_hex}"; }};\n'

    mail = HOSTS["mail"]
    asked = [(mail.fqdn, "A"), ("example.org", "MX"), ("b.example.org", "MX"), (reverse_name(mail.address), "PTR")]
    with lab_connection("outside") as outside:
        outside.write("/root/lab-anchor.conf", anchors(digest))
        outside.write("/root/other-anchor.conf", anchors("00" * (len(digest) // 2)))
        for name, rtype in asked:
            seen = outside.run(["delv", "-a", "/root/lab-anchor.conf", f"@{NAMESERVER.address}", name, rtype])
            assert "; fully validated" in seen.stdout, (name, rtype, seen.stdout, seen.stderr)
        other = outside.run(
            ["delv", "-a", "/root/other-anchor.conf", f"@{NAMESERVER.address}", mail.fqdn, "A"], check=False
        )
        assert "; fully validated" not in other.stdout and "resolution failed" in other.stdout + other.stderr, other


def test_the_lab_comes_up_again_signing_with_the_same_keys(lab: Lab) -> None:
    """The zones' keys are kept on this machine (0600) from the lab's first life, so the root key, the trust anchor
    a server's resolver and a part snapshot hold, is the same after 'lab down' and 'up' (and the chain validates)."""
    from mailkit.lab import dns

    anchor = lab.root_anchor()
    kept = sorted(lab.signing_keys_dir.iterdir())
    assert any(p.name.startswith("K.+") and p.suffix == ".private" for p in kept), kept
    assert all(dns.KEY_FILE.fullmatch(p.name) and p.stat().st_mode & 0o777 == 0o600 for p in kept), kept
    release = lab.status()["release"]
    assert lab.down() and lab.up(release)
    assert lab.root_anchor() == anchor, "BIND signs with the kept keys"
    test_the_zones_are_signed_and_validate_from_the_labs_root_key(lab)
