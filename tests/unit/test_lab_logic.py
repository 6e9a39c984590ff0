"""The lab's pure parts: status shape, DNS zones, network commands, CLI errors (no root needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailkit.cli import main
from mailkit.core.errors import LabError
from mailkit.core.local import run_local
from mailkit.lab import dns, lab, machine, network
from mailkit.lab.layout import HOSTS, NETWORK_V4
from mailkit.lab.selfcheck import parse_os_release


def test_status_of_a_lab_never_started(tmp_path: Path) -> None:
    status = lab.Lab(tmp_path).status()
    assert status["state"] == "down"
    assert status["release"] is None
    assert set(status["hosts"]) == {"mail", "outside", "dns"}
    assert status["hosts"]["mail"] == {
        "address": "198.51.100.25",
        "address6": "2001:db8:100::25",
        "hostname": "mail.example.org",
        "running": False,
    }


def test_status_with_dead_processes_is_broken(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text(json.dumps({"release": "trixie", "hosts": {"mail": {"pid": 999999999}}}))
    status = lab.Lab(tmp_path).status()
    assert status["state"] == "broken"
    assert status["release"] == "trixie"


def test_status_json_from_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILKIT_LAB_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["lab", "status", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["release"] is None
    for name, host in data["hosts"].items():
        assert host["hostname"] == HOSTS[name].fqdn
        assert host["address"].startswith("198.51.100.")


def test_every_address_is_in_the_documentation_range() -> None:
    import ipaddress

    net = ipaddress.ip_network(NETWORK_V4)
    v6 = ipaddress.ip_network("2001:db8::/32")
    for spec in HOSTS.values():
        assert ipaddress.ip_address(spec.address) in net
        assert ipaddress.ip_address(spec.address6) in v6
        assert spec.fqdn.endswith((".example.org", ".example.net"))


def test_unknown_release_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(main, ["lab", "up", "--release", "hamm"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "mailkit: error: unknown release 'hamm': choose one of bullseye, bookworm, trixie, sid"
    ]


def test_not_root_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab.os, "geteuid", lambda: 1000)
    result = CliRunner().invoke(main, ["lab", "up"])
    assert result.exit_code == 2
    assert "needs root" in result.output and len(result.output.strip().splitlines()) == 1


def test_missing_tools_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab.os, "geteuid", lambda: 0)
    monkeypatch.setattr(lab.shutil, "which", lambda tool: None if tool in ("debootstrap", "systemd-nspawn") else "/x")
    result = CliRunner().invoke(main, ["lab", "down"])
    assert result.exit_code == 2
    assert "missing debootstrap, systemd-nspawn" in result.output


def test_zones_hold_a_mx_and_ptr_for_every_host() -> None:
    zones = dns.zone_files()
    for spec in HOSTS.values():
        assert f"{spec.fqdn}. IN A {spec.address}" in zones[spec.domain]
        assert f"{spec.fqdn}. IN AAAA {spec.address6}" in zones[spec.domain]
        assert f"{dns.reverse_name(spec.address)} IN PTR {spec.fqdn}." in zones[dns.REVERSE_ZONE_V4]
        assert f"{dns.reverse_name(spec.address6)} IN PTR {spec.fqdn}." in zones[dns.REVERSE_ZONE_V6]
    assert "@ IN MX 10 mail.example.org." in zones["example.org"]
    assert "@ IN MX 10 mail.example.org." in zones["b.example.org"]
    assert "@ IN MX 10 outside.example.net." in zones["example.net"]


def test_reverse_zone_v6_holds_the_host_pointers() -> None:
    for spec in HOSTS.values():
        assert dns.zone_for(dns.reverse_name(spec.address6)) == dns.REVERSE_ZONE_V6
        assert dns.zone_for(dns.reverse_name(spec.address)) == dns.REVERSE_ZONE_V4


def test_zone_for_picks_the_most_specific_zone() -> None:
    assert dns.zone_for("mail.b.example.org.") == "b.example.org"
    assert dns.zone_for("selector._domainkey.example.org") == "example.org"
    with pytest.raises(Exception, match="not in a lab zone"):
        dns.zone_for("example.com")


def test_named_conf_serves_every_zone_with_updates_by_key_only() -> None:
    conf = dns.named_conf("c2VjcmV0")
    for zone in (".", *dns.ALL_ZONES):
        assert f'zone "{zone}"' in conf["named.conf.local"]
    lab_only = 'update-policy { grant "mailkit-lab." zonesub ANY; }'
    assert conf["named.conf.local"].count(lab_only) == len(dns.ALL_ZONES) + 1
    assert "recursion no;" in conf["named.conf.options"]
    assert "default-zones" not in conf["named.conf"]
    assert conf["mailkit-students.key"] == ""


def test_a_students_dns_key_may_change_their_own_domain_only() -> None:
    """Security review, finding 7: a student publishes with a key of their own, as a registrar's customer does."""
    conf = dns.named_conf("c2VjcmV0", {"student01.example.org": "c3R1ZGVudDAx", "student02.example.org": "c3R1"})
    org = next(line for line in conf["named.conf.local"].splitlines() if line.startswith('zone "example.org"'))
    assert 'grant "student01.example.org." subdomain student01.example.org. ANY;' in org
    assert 'grant "student02.example.org." subdomain student02.example.org. ANY;' in org
    others = [line for line in conf["named.conf.local"].splitlines() if not line.startswith('zone "example.org"')]
    assert not any("student" in line for line in others), "no grant in any other zone"
    key = 'key "student01.example.org." { algorithm hmac-sha256; secret "c3R1ZGVudDAx"; };'
    assert key in conf["mailkit-students.key"]
    assert 'include "/etc/bind/mailkit-students.key";' in conf["named.conf"]


def test_network_commands_give_each_host_its_addresses() -> None:
    for spec in HOSTS.values():
        plugged = [" ".join(argv) for argv in network.host_commands(spec)]
        assert f"ip -n {spec.netns} link set eth0 address {spec.mac}" in plugged
        inside = [" ".join(argv) for argv in network.address_commands(spec)]
        assert f"ip addr add {spec.address}/24 dev eth0" in inside
        assert any("default via 198.51.100.1" in line for line in inside)


def test_os_release_codename() -> None:
    assert parse_os_release("ID=debian\nVERSION_CODENAME=bookworm\n") == "bookworm"
    assert parse_os_release("ID=debian\n") == "unknown"


def test_every_zone_file_has_a_valid_origin_and_soa() -> None:
    for zone, text in dns.zone_files().items():
        origin_line, soa_line = text.splitlines()[1:3]
        expected = "." if zone == "." else zone + "."
        assert origin_line == f"$ORIGIN {expected}"
        assert ".." not in soa_line and soa_line.startswith("@ IN SOA ns.example.net. hostmaster.")


def test_hosts_boot_in_a_user_namespace_with_a_network_of_their_own_behind_the_machines_switch() -> None:
    """Security review, finding 7: no lab host's root is the machine's root; its network namespace is made with its
    user namespace (it may set a firewall, as on a rented server), and only its eth0 is moved in: the switch port at
    the other end, with its guard, stays the machine's."""
    argv = machine.nspawn_argv(Path("/r"), HOSTS["mail"])
    assert "--private-users=pick" in argv and "--private-users-ownership=chown" in argv
    assert "--private-network" in argv and "--network-interface=eth0" in argv
    assert not any(a.startswith("--network-namespace-path") for a in argv)
    assert "ether saddr != 02:" in network.port_guard(HOSTS["mail"])


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another UID range needs root, as the lab does")
def test_files_written_into_a_booted_host_belong_to_its_own_users(tmp_path: Path) -> None:
    """Once a host has booted, its tree is owned by its UID range: what the lab writes there (identity, keys)
    must be too, or the host's sshd sees root's authorized_keys owned by nobody."""
    base = 1_000_000_000
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    os.chown(root, base, base)
    machine._put(root, "root/.ssh/authorized_keys", "ssh-ed25519 AAAA key\n", 0o600)
    machine._put(root, "etc/bind/named.conf", "options {};\n", 0o640, (0, 113))
    assert machine.uid_base(root) == base
    keys = root / "root/.ssh/authorized_keys"
    assert (keys.stat().st_uid, (root / "root/.ssh").stat().st_uid, (root / "root").stat().st_uid) == (base,) * 3
    assert (root / "etc/bind/named.conf").stat().st_gid == base + 113


def test_a_link_in_a_hosts_tree_is_never_written_through(tmp_path: Path) -> None:
    """A host's root may make /etc/ssh a link to anywhere, and a snapshot keeps it: the lab, writing the next boot's
    identity as the machine's root, refuses it rather than writing where it points; a link as the file is replaced."""
    root, elsewhere = tmp_path / "root", tmp_path / "machine-etc"
    (root / "etc").mkdir(parents=True)
    elsewhere.mkdir()
    (root / "etc/ssh").symlink_to(elsewhere)
    with pytest.raises(LabError, match="etc/ssh is a link in the host's tree"):
        machine._put(root, "etc/ssh/sshd_config.d/mailkit-lab.conf", "PasswordAuthentication no\n")
    assert list(elsewhere.iterdir()) == []
    (root / "etc/hostname").symlink_to(elsewhere / "hostname")
    machine._put(root, "etc/hostname", "mail\n")
    assert not (root / "etc/hostname").is_symlink() and (root / "etc/hostname").read_text() == "mail\n"
    assert list(elsewhere.iterdir()) == []


def _ca_pem(tmp_path: Path) -> bytes:
    key, cert = tmp_path / "ca.key", tmp_path / "ca.pem"
    run_local(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
               "-subj", "/CN=mailkit test CA", "-days", "1", "-keyout", str(key), "-out", str(cert)])  # fmt: skip
    return cert.read_bytes()


def test_a_hosts_ca_bundle_that_is_a_link_is_never_read_through(tmp_path: Path) -> None:
    """A host's root may make its CA bundle a link to a secret of the machine's: trusting the lab CA, which appends to
    the bundle as the machine's root, must not copy that secret into the host's tree; a FIFO there must not hold the
    lab; the subject hash comes from the machine's openssl, never from a program in the host's tree."""
    root, secret = tmp_path / "root", tmp_path / "shadow"
    (root / "etc/ssl/certs").mkdir(parents=True)
    secret.write_text("root:$6$secret:19000:0:99999:7:::\n")
    bundle = root / "etc/ssl/certs/ca-certificates.crt"
    bundle.symlink_to(secret)
    pem = _ca_pem(tmp_path)
    machine.trust_ca(root, pem)
    assert bundle.read_bytes() == pem and not bundle.is_symlink(), "the link replaced, the secret not read"
    assert secret.read_text().startswith("root:$6$secret"), "and not written either"
    hashed = [p for p in (root / "etc/ssl/certs").iterdir() if p.name.endswith(".0")]
    assert len(hashed) == 1 and os.readlink(hashed[0]) == "/usr/local/share/ca-certificates/mailkit-lab.crt"
    bundle.unlink()
    os.mkfifo(bundle)
    with pytest.raises(LabError, match="not a plain file"):
        machine.trust_ca(root, pem)


def test_a_link_on_the_way_to_what_the_lab_removes_or_chmods_is_refused(tmp_path: Path) -> None:
    """The lab removes the image's D-Bus machine id and tightens /root/.ssh as the machine's root: a link on the way
    (var/lib/dbus pointing at the machine's own) is refused before anything is removed or written."""
    root, machines_dbus = tmp_path / "root", tmp_path / "machine-dbus"
    (root / "var/lib").mkdir(parents=True)
    machines_dbus.mkdir()
    (machines_dbus / "machine-id").write_text("the machine's own id\n")
    (root / "var/lib/dbus").symlink_to(machines_dbus)
    host_key = tmp_path / "ssh_host_ed25519_key"
    host_key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    host_key.with_suffix(".pub").write_text("ssh-ed25519 AAAA test\n")
    with pytest.raises(LabError, match="var/lib/dbus is a link in the host's tree"):
        machine.write_identity(root, HOSTS["mail"], host_key, "ssh-ed25519 AAAA you\n")
    assert (machines_dbus / "machine-id").read_text() == "the machine's own id\n"


def test_every_zone_is_signed_and_delegated_down_from_the_labs_root() -> None:
    conf = dns.named_conf("c2VjcmV0")["named.conf.local"]
    assert conf.count(f'dnssec-policy "{dns.DNSSEC_POLICY}";') == len(dns.ALL_ZONES) + 1, "the root too"
    root = dns.zone_files()["."]
    assert sorted(dns.TOP_ZONES) == ["0.0.0.0.0.0.1.0.8.b.d.0.1.0.0.2.ip6.arpa", "100.51.198.in-addr.arpa",
                                     "example.net", "example.org"]  # fmt: skip
    assert all(f"{zone}. IN NS ns.example.net." in root for zone in dns.TOP_ZONES)
    assert [dns.parent_zone(z) for z in ("b.example.org", "bl.example.net", "example.org")] == [
        "example.org", "example.net", "."
    ]  # fmt: skip


def test_a_zone_put_back_from_a_snapshot_loses_what_signing_added() -> None:
    """What ``rndc sync -clean`` writes of a signed zone (a multi-line RRSIG, the keys, NSEC, BIND's private signing
    state, a child's DS): only the zone's own records go back; the signer and the registrar step add the rest."""
    kept = """$ORIGIN example.org.
$TTL 300
@ SOA ns.example.net. hostmaster.example.org. 7 3600 600 86400 300
@ NS ns.example.net.
@ MX 10 mail.example.org.
@ RRSIG MX 13 2 300 ( 20261220000000 20261206000000 4242 example.org.
            AAAABBBB )
@ DNSKEY 257 3 13 AAAABBBB
@ NSEC b.example.org. NS SOA MX RRSIG NSEC DNSKEY TYPE65534
@ TYPE65534 \\# 5 0D10B20001
b NS ns.example.net.
b DS 4242 13 2 ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789
mail A 198.51.100.25
"""
    back = dns.unsigned(kept, "example.org")
    assert "MX 10 mail.example.org." in back and "A 198.51.100.25" in back and "b.example.org. 300 IN NS" in back
    assert not any(word in back for word in ("RRSIG", "DNSKEY", "NSEC", "TYPE65534", " DS "))


def test_a_students_kept_records_go_back_only_under_their_domain_and_never_half(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A student's snapshot puts their domain's records back (issue 22): zone file lines, each checked before the
    one update is sent; a line that names another domain, a type the signer makes, or is not a record changes
    nothing. Long TXT records (DKIM keys) come back whole."""
    sent: list[object] = []
    monkeypatch.setattr("dns.query.tcp", lambda update, *_a, **_k: sent.append(update))
    domain = "student01.example.org"
    for text, why in (
        ('student01.example.org. 300 IN TXT "v=spf1 mx -all"\n_dmarc.example.org. 300 IN TXT "x"', "not student01"),
        ("student01.example.org. 300 IN DNSKEY 257 3 13 AAAA", "makes those itself"),
        ("student01.example.org. 300 IN SOA ns. h. 1 2 3 4 5", "makes those itself"),
        ("student01.example.org. 300 TXT x", "does not read as a record"),
        ("evilstudent01.example.org. 300 IN TXT x", "not student01"),
    ):
        with pytest.raises(dns.LabError, match=why):
            dns.add_records(domain, text, "secret")
    assert sent == [], "nothing sent for a refused line"

    class Answer:
        def rcode(self) -> int:
            return 0

    monkeypatch.setattr("dns.query.tcp", lambda update, *_a, **_k: sent.append(update) or Answer())
    served: list[tuple[str, str, list[str]]] = []
    monkeypatch.setattr(dns, "_wait_until_served", lambda *args: served.append(args))
    dkim = '"v=DKIM1; k=rsa; p=' + "A" * 200 + '" "' + "B" * 150 + '"'
    text = (
        f"s1._domainkey.{domain}. 300 IN TXT {dkim}\n{domain}. 300 IN MX 10 mail.{domain}.\n{domain}. 300 IN MX 20 b.\n"
    )
    assert dns.add_records(domain, text, "tsig") == 2
    assert len(sent) == 1, "one update for all of them"
    assert sorted(served) == sorted([
        (f"{domain}.", "MX", [f"10 mail.{domain}.", "20 b."]),
        (f"s1._domainkey.{domain}.", "TXT", [dkim]),
    ])  # fmt: skip
