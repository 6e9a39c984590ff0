"""The lab's DNS: BIND 9 configuration and zones rendered here, records changed by dynamic update.

The DNS host is authoritative for the root zone too, so a name outside the lab gets an immediate
NXDOMAIN instead of a resolver time-out (the lab has no internet to recurse into).

>>> reverse_name("198.51.100.25")
'25.100.51.198.in-addr.arpa.'
>>> zone_for("_dmarc.example.org")
'example.org'
"""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets
import stat
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from mailkit.core.errors import LabError

if TYPE_CHECKING:
    import dns.name
    import dns.node
    import dns.zone

    from mailkit.core.ssh import Connection
from mailkit.lab.layout import (
    BACKUP_ADDRESS,
    BLOCKLIST_ZONE,
    CLOUD_ADDRESS,
    HOSTS,
    LISTED_ADDRESS,
    RELAY_ADDRESS,
    REVERSE_ZONE_V4,
    REVERSE_ZONE_V6,
    TSIG_KEY_NAME,
    ZONES,
)

NAMESERVER = HOSTS["dns"]
SOA_TIMERS = "1 3600 600 86400 300"
ALL_ZONES: tuple[str, ...] = (*ZONES, REVERSE_ZONE_V4, REVERSE_ZONE_V6)
#: The zones the root delegates; the others are delegated by one of these (b.example.org by example.org).
TOP_ZONES: tuple[str, ...] = tuple(z for z in ALL_ZONES if not any(z.endswith("." + p) for p in ALL_ZONES))
#: Every zone is signed as a DNS host that offers DNSSEC signs: BIND's ``dnssec-policy`` (one ECDSA P-256 key per
#: zone, kept on the DNS host), the signatures made when a zone loads and kept fresh on every update.
DNSSEC_POLICY = "default"
#: How types DNSSEC adds are named in a zone's file: what a zone kept by a snapshot drops before it loads again (the
#: signer makes them afresh) and a DS, which the parent's registrar step publishes again.
DNSSEC_TYPES = frozenset({"RRSIG", "NSEC", "NSEC3", "NSEC3PARAM", "DNSKEY", "CDS", "CDNSKEY", "DS", "TYPE65534"})


#: Where BIND keeps the zones' signing keys on the DNS host (``key-directory``).
KEY_DIRECTORY = "/var/lib/bind/keys"
#: A signing key's files as BIND names them: ``K<zone>.+<algorithm>+<tag>`` and ``.key``, ``.private``, ``.state``.
KEY_FILE = re.compile(r"K[a-z0-9.-]*\.\+[0-9]{3}\+[0-9]{5}\.(key|private|state)")
#: No key file BIND writes is near this; a larger one is not a key file.
KEY_FILE_MAX = 16 * 1024


def read_signing_keys(conn: Connection) -> dict[str, str]:
    """The zones' signing keys as BIND keeps them on the DNS host (file name -> text): regular files named as BIND
    names them and of a key file's size, anything else in the directory is left alone. The lab keeps them, so the
    zones are signed with the same keys, and its root key (the trust anchor) stays, in every life of the lab.

    >>> bool(KEY_FILE.fullmatch("K.+013+27490.private")), bool(KEY_FILE.fullmatch("../K.+013+27490.key"))
    (True, False)
    """
    keys = {}
    for entry in conn.sftp.listdir_attr(KEY_DIRECTORY):
        if not KEY_FILE.fullmatch(entry.filename) or entry.st_mode is None or not stat.S_ISREG(entry.st_mode):
            continue
        if (entry.st_size or 0) > KEY_FILE_MAX:
            raise LabError(f"{KEY_DIRECTORY}/{entry.filename} on the DNS host is {entry.st_size} bytes: not a key")
        with conn.sftp.open(f"{KEY_DIRECTORY}/{entry.filename}", "rb") as remote:
            data = remote.read(KEY_FILE_MAX + 1)
        if len(data) > KEY_FILE_MAX:
            raise LabError(f"{KEY_DIRECTORY}/{entry.filename} on the DNS host grew past {KEY_FILE_MAX} bytes")
        keys[entry.filename] = data.decode("ascii")
    return keys


def new_tsig_secret() -> str:
    """A fresh HMAC-SHA256 key for dynamic updates, base64 as BIND writes it."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def reverse_name(address: str) -> str:
    return ipaddress.ip_address(address).reverse_pointer + "."


def zone_for(name: str) -> str:
    """The lab zone that holds ``name`` (longest suffix wins); error if none does."""
    fqdn = name.rstrip(".").lower()
    matches = [z for z in ALL_ZONES if fqdn == z or fqdn.endswith("." + z)]
    if not matches:
        raise LabError(f"{name!r} is not in a lab zone ({', '.join(ALL_ZONES)})")
    return max(matches, key=len)


def _zone_file(origin: str, records: Iterable[str]) -> str:
    ns = f"{NAMESERVER.fqdn}."
    fqdn = origin if origin.endswith(".") else origin + "."
    head = [
        "$TTL 300",
        f"$ORIGIN {fqdn}",
        f"@ IN SOA {ns} hostmaster.{fqdn if fqdn != '.' else 'example.net.'} ({SOA_TIMERS})",
        f"@ IN NS {ns}",
    ]
    return "\n".join([*head, *records]) + "\n"


def zone_files() -> dict[str, str]:
    """Every zone's initial content: A/AAAA, MX and PTR records for every lab host."""
    records: dict[str, list[str]] = {zone: [] for zone in ALL_ZONES}
    for spec in HOSTS.values():
        records[spec.domain] += [f"{spec.fqdn}. IN A {spec.address}", f"{spec.fqdn}. IN AAAA {spec.address6}"]
        records[REVERSE_ZONE_V4].append(f"{reverse_name(spec.address)} IN PTR {spec.fqdn}.")
        records[REVERSE_ZONE_V6].append(f"{reverse_name(spec.address6)} IN PTR {spec.fqdn}.")
    mail, outside = HOSTS["mail"].fqdn, HOSTS["outside"].fqdn
    records["example.org"] += [f"@ IN MX 10 {mail}.", f"b IN NS {NAMESERVER.fqdn}."]
    records["b.example.org"].append(f"@ IN MX 10 {mail}.")
    records["example.net"] += [f"@ IN MX 10 {outside}.", f"bl IN NS {NAMESERVER.fqdn}."]
    # Provider mode (mailkit/lab/provider.py): the provider's resolver and the ACME CA on the outside host.
    records["example.net"] += [
        f"resolver IN A {NAMESERVER.extra_addresses[0]}",
        f"acme IN A {HOSTS['outside'].address}",
        # The relay provider for readers whose port 25 is blocked (mailkit/lab/relay_provider.py).
        f"relay IN A {RELAY_ADDRESS}",
        f'relay IN TXT "v=spf1 ip4:{RELAY_ADDRESS} -all"',
    ]
    records[REVERSE_ZONE_V4].append(f"{reverse_name(RELAY_ADDRESS)} IN PTR relay.example.net.")
    # The cloud provider a reader moves out of (mailkit/lab/cloud_provider.py).
    records["example.net"].append(f"imap.cloud IN A {CLOUD_ADDRESS}")
    records[REVERSE_ZONE_V4].append(f"{reverse_name(CLOUD_ADDRESS)} IN PTR imap.cloud.example.net.")
    # The backup host the server's backups go to (mailkit/lab/backup_host.py).
    records["example.net"].append(f"backup IN A {BACKUP_ADDRESS}")
    records[REVERSE_ZONE_V4].append(f"{reverse_name(BACKUP_ADDRESS)} IN PTR backup.example.net.")
    records[BLOCKLIST_ZONE] += blocklist_records()
    files = {zone: _zone_file(zone, recs) for zone, recs in records.items()}
    # The root delegates each top zone of the lab (its DS comes once the zone is signed: publish_chain).
    glue = [f"{NAMESERVER.fqdn}. IN A {NAMESERVER.address}", f"{NAMESERVER.fqdn}. IN AAAA {NAMESERVER.address6}"]
    files["."] = _zone_file(".", glue + [f"{zone}. IN NS {NAMESERVER.fqdn}." for zone in TOP_ZONES])
    return files


def blocklist_records() -> list[str]:
    """The lab block list: the listed sender, and RFC 5782's 127.0.0.2 test entry every list carries.

    >>> blocklist_records()[0]
    '66.100.51.198.bl.example.net. IN A 127.0.0.2'
    """
    records = []
    for address in (LISTED_ADDRESS, "127.0.0.2"):
        name = ".".join(reversed(address.split("."))) + f".{BLOCKLIST_ZONE}."
        records += [f"{name} IN A 127.0.0.2", f'{name} IN TXT "listed by the mailkit lab block list"']
    return records


def zone_filename(zone: str) -> str:
    return "db.root" if zone == "." else f"db.{zone}"


def tsig_key_statement(name: str, secret: str) -> str:
    """A ``key`` statement, as ``tsig-keygen`` writes it (and ``mailkit registrar rfc2136 --key-file`` reads it)."""
    return f'key "{name}" {{ algorithm hmac-sha256; secret "{secret}"; }};\n'


def student_key_name(domain: str) -> str:
    """The name of the DNS update key a student's domain may be changed with: ``student01.example.org.``."""
    return domain.rstrip(".") + "."


def named_conf(tsig_secret: str, student_secrets: Mapping[str, str] | None = None) -> dict[str, str]:
    """BIND's configuration files (paths under /etc/bind), replacing Debian's default zones.

    The lab's key may change every zone; a student's key (``student_secrets``: domain -> secret) only the names
    at and under the student's own domain, as a registrar's API token can change only its customer's domain.

    >>> local = named_conf("c2VjcmV0", {"student01.example.org": "c3R1ZGVudA=="})["named.conf.local"]
    >>> 'grant "student01.example.org." subdomain student01.example.org. ANY;' in local
    True
    """
    students = dict(student_secrets or {})
    key = tsig_key_statement(TSIG_KEY_NAME, tsig_secret)
    zones = []
    for zone in (".", *ALL_ZONES):
        grants = [f'grant "{TSIG_KEY_NAME}" zonesub ANY;']
        grants += [
            f'grant "{student_key_name(d)}" subdomain {d}. ANY;' for d in sorted(students) if zone_for(d) == zone
        ]
        zones.append(
            f'zone "{zone}" {{ type primary; file "/var/lib/bind/{zone_filename(zone)}"; '
            f'update-policy {{ {" ".join(grants)} }}; allow-transfer {{ key "{TSIG_KEY_NAME}"; }}; '
            f'dnssec-policy "{DNSSEC_POLICY}"; key-directory "{KEY_DIRECTORY}"; }};'
        )
    options = (
        "options {\n"
        '    directory "/var/cache/bind";\n'
        # Its own address only: the host's second one is the resolver's in provider mode (mailkit/lab/provider.py).
        f"    listen-on {{ {NAMESERVER.address}; 127.0.0.1; }};\n"
        f"    listen-on-v6 {{ {NAMESERVER.address6}; ::1; }};\n"
        "    allow-query { any; };\n"
        "    recursion no;\n"
        "    dnssec-validation no;\n"
        "    notify no;\n"
        "};\n"
    )
    return {
        "named.conf": 'include "/etc/bind/named.conf.options";\ninclude "/etc/bind/mailkit-lab.key";\n'
        'include "/etc/bind/mailkit-students.key";\ninclude "/etc/bind/named.conf.local";\n',
        "named.conf.options": options,
        "mailkit-lab.key": key,
        "mailkit-students.key": "".join(
            tsig_key_statement(student_key_name(domain), secret) for domain, secret in sorted(students.items())
        ),
        "named.conf.local": "\n".join(zones) + "\n",
    }


def set_records(name: str, rtype: str, values: list[str], secret: str, *, ttl: int = 300) -> None:
    """Replace the ``rtype`` records of ``name`` with ``values`` in the running lab DNS (no restart).

    >>> set_records("_dmarc.example.org", "TXT", ['"v=DMARC1; p=none"'], secret)  # doctest: +SKIP
    """
    import dns.query
    import dns.rcode
    import dns.tsigkeyring
    import dns.update

    keyring = dns.tsigkeyring.from_text({TSIG_KEY_NAME: secret})
    zone = zone_for(name)
    if rtype.upper() == "DS" and name.rstrip(".").lower() == zone:  # a zone's DS is its parent's, as at a registrar
        zone = parent_zone(zone)
    update = dns.update.Update(zone if zone == "." else zone + ".", keyring=keyring, keyalgorithm="hmac-sha256")
    fqdn = name.rstrip(".") + "."
    if values:
        update.replace(fqdn, ttl, rtype, *values)
    else:
        update.delete(fqdn, rtype)
    response = dns.query.tcp(update, NAMESERVER.address, timeout=5)
    if response.rcode() != dns.rcode.NOERROR:
        raise LabError(f"DNS update of {fqdn} {rtype} refused: {dns.rcode.to_text(response.rcode())}")
    _wait_until_served(fqdn, rtype, values)


def _wait_until_served(fqdn: str, rtype: str, values: list[str], timeout: float = 15) -> None:
    """Until the name server answers with ``values``: a signed zone takes an update first into its unsigned copy and
    serves it once signed, a moment later (a test that reads the records at once would read the old ones)."""
    import time

    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype

    from mailkit.domain.records import lookup_at

    kind = dns.rdatatype.from_text(rtype)
    wanted = {dns.rdata.from_text(dns.rdataclass.IN, kind, v).to_text() for v in values}
    lookup = lookup_at(NAMESERVER.address)
    deadline = time.monotonic() + timeout
    while set(lookup(fqdn, rtype)) != wanted:
        if time.monotonic() > deadline:
            raise LabError(f"{NAMESERVER.fqdn} still does not answer {fqdn} {rtype} as updated after {timeout:.0f} s")
        time.sleep(0.05)


def delete_names_under(suffix: str, secret: str) -> list[str]:
    """Delete every record of ``suffix`` and of every name below it (read by a signed zone transfer); return the
    names deleted. Used to give a workshop student's domain a clean slate.

    >>> delete_names_under("student01.example.org", secret)  # doctest: +SKIP
    ['student01.example.org.', 's202612._domainkey.student01.example.org.']
    """
    import dns.query
    import dns.rcode
    import dns.tsigkeyring
    import dns.update

    names = [name for name, _ in _nodes_under(suffix, secret)]
    if not names:
        return []
    keyring = dns.tsigkeyring.from_text({TSIG_KEY_NAME: secret})
    update = dns.update.Update(zone_for(suffix) + ".", keyring=keyring, keyalgorithm="hmac-sha256")
    for name in names:
        update.delete(name)
    response = dns.query.tcp(update, NAMESERVER.address, timeout=5)
    if response.rcode() != dns.rcode.NOERROR:
        raise LabError(f"DNS update under {suffix} refused: {dns.rcode.to_text(response.rcode())}")
    return sorted(n.to_text() for n in names)


def _transfer(zone: str, secret: str) -> dns.zone.Zone:
    """``zone`` as the name server serves it now (a signed zone transfer), whole names throughout."""
    import dns.query
    import dns.tsigkeyring
    import dns.zone

    keyring = dns.tsigkeyring.from_text({TSIG_KEY_NAME: secret})
    origin = zone if zone == "." else zone.rstrip(".") + "."
    transfer = dns.query.xfr(
        NAMESERVER.address, origin, keyring=keyring, keyalgorithm="hmac-sha256", timeout=10, relativize=False
    )
    return dns.zone.from_xfr(transfer, relativize=False)


def _nodes_under(suffix: str, secret: str) -> list[tuple[dns.name.Name, dns.node.Node]]:
    """The names at and below ``suffix`` in the zone that holds it, as served now, with their records."""
    import dns.name

    top = dns.name.from_text(suffix.rstrip(".") + ".")
    return [(n, node) for n, node in sorted(_transfer(zone_for(suffix), secret).nodes.items()) if n.is_subdomain(top)]


def records_under(suffix: str, secret: str) -> str:
    """Every record of ``suffix`` and of the names below it as the name server serves them, without what signing
    adds, as zone file lines with whole names: what a student's snapshot keeps of the DNS (what their run published).

    >>> print(records_under("student01.example.org", secret))  # doctest: +SKIP
    mail.student01.example.org. 300 IN A 198.51.100.111
    ...
    """
    import dns.rdatatype

    lines = [
        rdataset.to_text(name)
        for name, node in _nodes_under(suffix, secret)
        for rdataset in node.rdatasets
        if dns.rdatatype.to_text(rdataset.rdtype) not in DNSSEC_TYPES
    ]
    return "".join(line + "\n" for line in lines)


def add_records(suffix: str, text: str, secret: str) -> int:
    """Add the records ``text`` holds (zone file lines with whole names, as :func:`records_under` writes them) in one
    update and wait until they are served; returns how many record sets. Each must be of ``suffix`` or a name below
    it and of a type signing does not make, else nothing is changed.

    >>> add_records("student01.example.org", 'x.example.net. 60 IN TXT "no"', "")
    Traceback (most recent call last):
    ...
    mailkit.core.errors.LabError: refusing x.example.net. TXT: not student01.example.org or a name below it
    """
    import dns.exception
    import dns.name
    import dns.query
    import dns.rcode
    import dns.rdatatype
    import dns.rrset
    import dns.tsigkeyring
    import dns.update

    zone = zone_for(suffix) + "."
    top = dns.name.from_text(suffix.rstrip(".") + ".")
    sets: dict[tuple[str, str], dns.rrset.RRset] = {}
    for line in filter(None, (line.strip() for line in text.splitlines())):
        fields = line.split(None, 4)
        try:
            if len(fields) != 5 or fields[2] != "IN":
                raise ValueError("not NAME TTL IN TYPE DATA")
            rrset = dns.rrset.from_text(fields[0], int(fields[1]), "IN", fields[3], fields[4])
        except (ValueError, dns.exception.DNSException) as error:
            raise LabError(f"the records kept for {suffix}: {line[:80]!r} does not read as a record: {error}") from None
        rtype = dns.rdatatype.to_text(rrset.rdtype)
        if not rrset.name.is_absolute() or not rrset.name.is_subdomain(top):
            raise LabError(f"refusing {rrset.name} {rtype}: not {suffix} or a name below it")
        if rtype in DNSSEC_TYPES or rtype == "SOA":
            raise LabError(f"refusing {rrset.name} {rtype}: the name server makes those itself")
        key = (rrset.name.to_text(), rtype)
        if key in sets:
            sets[key].union_update(rrset)
        else:
            sets[key] = rrset
    if not sets:
        return 0
    keyring = dns.tsigkeyring.from_text({TSIG_KEY_NAME: secret})
    update = dns.update.Update(zone, keyring=keyring, keyalgorithm="hmac-sha256")
    for rrset in sets.values():
        update.add(rrset.name, rrset)
    response = dns.query.tcp(update, NAMESERVER.address, timeout=5)
    if response.rcode() != dns.rcode.NOERROR:
        raise LabError(f"DNS update under {suffix} refused: {dns.rcode.to_text(response.rcode())}")
    for (name, rtype), rrset in sets.items():
        _wait_until_served(name, rtype, [rdata.to_text() for rdata in rrset])
    return len(sets)


def parent_zone(zone: str) -> str:
    """The zone that delegates ``zone``: the root for a top zone.

    >>> parent_zone("b.example.org"), parent_zone("example.org")
    ('example.org', '.')
    """
    above = zone.split(".", 1)[1] if "." in zone else ""
    return zone_for(above) if above and any(above == z or above.endswith("." + z) for z in ALL_ZONES) else "."


def _signing_key_ds(zone: str, timeout: float) -> str:
    """The DS record naming ``zone``'s key-signing key, once BIND has signed the zone (it does on load)."""
    import time
    import warnings

    import dns.message
    import dns.query
    import dns.rdatatype

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import dns.dnssec

    origin = zone.rstrip(".") + "."
    deadline = time.monotonic() + timeout
    while True:
        query = dns.message.make_query(origin, "DNSKEY", want_dnssec=True)
        answer = dns.query.tcp(query, NAMESERVER.address, timeout=5)
        keys = [k for rrset in answer.answer if rrset.rdtype == dns.rdatatype.DNSKEY for k in rrset if k.flags & 1]
        signed = any(r.rdtype == dns.rdatatype.RRSIG for r in answer.answer)
        if keys and signed:
            return dns.dnssec.make_ds(origin, keys[0], "SHA256").to_text()
        if time.monotonic() > deadline:
            raise LabError(f"BIND has not signed {origin} after {timeout:.0f} s: no signed DNSKEY")
        time.sleep(0.2)


def publish_chain(secret: str, timeout: float = 60) -> str:
    """Once BIND signed the zones: each zone's DS published in its parent (what a registrar does with the DS a
    customer hands in), the root's returned as the lab's trust anchor (``. IN DS ...``, as IANA publishes the real
    root's). The keys stay on the DNS host, so after a zone is put back the same DS goes in again."""
    for zone in ALL_ZONES:
        set_records(zone, "DS", [_signing_key_ds(zone, timeout)], secret)
    return ". IN DS " + _signing_key_ds(".", timeout)


def _without_signing(zone: dns.zone.Zone) -> str:
    """``zone`` as a file, without what signing added and without DS records (see :func:`unsigned`)."""
    import dns.rdatatype

    for name, node in list(zone.nodes.items()):
        for rdataset in list(node.rdatasets):
            if dns.rdatatype.to_text(rdataset.rdtype) in DNSSEC_TYPES:
                node.delete_rdataset(rdataset.rdclass, rdataset.rdtype, rdataset.covers)
        if not node.rdatasets:
            del zone.nodes[name]
    return zone.to_text(relativize=False)


def unsigned(text: str, origin: str) -> str:
    """A zone's file as a snapshot kept it, without what signing added (the signer adds it afresh when it loads) and
    without DS records (published again by :func:`publish_chain`)."""
    import dns.zone

    return _without_signing(
        dns.zone.from_text(text, origin if origin.endswith(".") else origin + ".", relativize=False)
    )


def served_zones(secret: str) -> dict[str, str]:
    """Every lab zone as the name server serves it now (a signed zone transfer: updates included, however BIND keeps
    its files), without what signing added: file name -> text, as a snapshot keeps them."""
    return {zone_filename(zone): _without_signing(_transfer(zone, secret)) for zone in (".", *ALL_ZONES)}
