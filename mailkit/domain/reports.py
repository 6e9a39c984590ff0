"""Reports receivers send about your domains, read at home with the standard library: DMARC aggregate reports
(RFC 9990, and RFC 7489 appendix C's older form) and TLS-RPT reports (RFC 8460), as they arrive: XML or JSON,
gzip or zip, attached to a message.

Everything here comes from strangers, and some of it from forgers: sizes, counts and names are bounded, XML that
declares a document type or entities is refused (no expansion bombs), compressed data is unpacked only up to a
limit, addresses and numbers are checked, and text is shown flattened and cut.

>>> report = dmarc_report(SAMPLE)
>>> report.reporter, report.domain, [(r.source, r.count, r.passed) for r in report.rows]
('receiver.example.net', 'example.org', [('198.51.100.25', 3, True), ('198.51.100.199', 1, False)])
"""

from __future__ import annotations

import email
import email.policy
import io
import ipaddress
import json
import os
import re
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from mailkit.core.errors import MailkitError
from mailkit.core.mail_layout import MESSAGE_DIRS
from mailkit.core.text import shorten

#: The largest message, attachment and unpacked report read (a big provider's daily report is a few hundred KB).
MAX_MESSAGE = 25 * 1024 * 1024
MAX_PACKED = 10 * 1024 * 1024
MAX_UNPACKED = 32 * 1024 * 1024
#: The most rows (sources) one report may hold, and the most reports one message may carry.
MAX_ROWS = 20_000
MAX_REPORTS_PER_MESSAGE = 10
#: What DMARC and SPF/DKIM results may say (RFC 9990 section 3.1); anything else is shown as "unknown".
_RESULTS = {"pass", "fail", "none", "neutral", "softfail", "temperror", "permerror", "policy"}
_DISPOSITIONS = {"none", "quarantine", "reject", "pass"}
_DOMAIN = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,62})?(\.[a-z0-9_]([a-z0-9_-]{0,62})?)*\.?", re.I)

SAMPLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0">
  <report_metadata><org_name>receiver.example.net</org_name><email>reports@receiver.example.net</email>
    <report_id>r-1</report_id><date_range><begin>1764979200</begin><end>1765065599</end></date_range>
  </report_metadata>
  <policy_published><domain>example.org</domain><p>none</p></policy_published>
  <record><row><source_ip>198.51.100.25</source_ip><count>3</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>example.org</header_from></identifiers>
    <auth_results><dkim><domain>example.org</domain><selector>s202611</selector><result>pass</result></dkim>
      <spf><domain>example.org</domain><result>pass</result></spf></auth_results></record>
  <record><row><source_ip>198.51.100.199</source_ip><count>1</count>
      <policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>example.org</header_from></identifiers>
    <auth_results><spf><domain>forger.example.net</domain><result>pass</result></spf></auth_results></record>
</feedback>
"""


class ReportRefused(MailkitError):
    """A report (or the message carrying it) that is not one, too big, or unsafe to read."""


@dataclass(frozen=True)
class DmarcRow:
    """One source in a DMARC aggregate report: who sent how many messages as the domain, and the verdicts."""

    source: str
    count: int
    disposition: str
    dkim: str  # DMARC's aligned DKIM verdict (policy_evaluated)
    spf: str  # DMARC's aligned SPF verdict
    header_from: str
    #: The raw checks: ``dkim=example.org:pass``, ``spf=forger.example.net:pass``...
    details: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """DMARC passed: aligned DKIM or aligned SPF passed."""
        return "pass" in (self.dkim, self.spf)


@dataclass(frozen=True)
class DmarcReport:
    """A DMARC aggregate report: who sent it, for which domain and policy, over which time, and its rows."""

    reporter: str
    report_id: str
    begin: int
    end: int
    domain: str
    policy: str
    rows: tuple[DmarcRow, ...]


@dataclass(frozen=True)
class TlsPolicyResult:
    """One policy in a TLS-RPT report: its type and domain, sessions that succeeded and failed, and why."""

    kind: str  # sts, tlsa or no-policy-found
    domain: str
    successful: int
    failed: int
    failures: tuple[str, ...]  # "RESULT-TYPE at MX: COUNT"


@dataclass(frozen=True)
class TlsReport:
    """A TLS-RPT report (RFC 8460): who sent it, over which time, and a result per policy."""

    reporter: str
    report_id: str
    begin: str
    end: str
    policies: tuple[TlsPolicyResult, ...]


Report = DmarcReport | TlsReport


# -- unpacking --------------------------------------------------------------------------------------------------
def unpack(data: bytes, name: str = "") -> bytes:
    """A report file's content: gunzipped, unzipped (one member) or as it is, never more than MAX_UNPACKED bytes.

    >>> import gzip; unpack(gzip.compress(b"<feedback/>"), "r.xml.gz")
    b'<feedback/>'
    """
    if len(data) > MAX_PACKED:
        raise ReportRefused(f"{_shown(name)}: over {MAX_PACKED // 2**20} MiB packed")
    if data[:2] == b"\x1f\x8b":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out = inflater.decompress(data, MAX_UNPACKED + 1)
        except zlib.error as exc:
            raise ReportRefused(f"{_shown(name)}: not gzip ({exc})") from None
        if len(out) > MAX_UNPACKED or inflater.unconsumed_tail:
            raise ReportRefused(f"{_shown(name)}: unpacks to over {MAX_UNPACKED // 2**20} MiB")
        if not inflater.eof:
            raise ReportRefused(f"{_shown(name)}: not gzip (cut short)")
        return out
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = [m for m in archive.infolist() if not m.is_dir()]
                if len(members) != 1:
                    raise ReportRefused(f"{_shown(name)}: a zip of {len(members)} files (a report is one)")
                if members[0].file_size > MAX_UNPACKED:
                    raise ReportRefused(f"{_shown(name)}: unpacks to over {MAX_UNPACKED // 2**20} MiB")
                with archive.open(members[0]) as member:
                    out = member.read(MAX_UNPACKED + 1)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, OSError) as exc:
            raise ReportRefused(f"{_shown(name)}: not a readable zip ({shorten(str(exc), 60)})") from None
        if len(out) > MAX_UNPACKED:
            raise ReportRefused(f"{_shown(name)}: unpacks to over {MAX_UNPACKED // 2**20} MiB")
        return out
    return data


def read_report(data: bytes, name: str = "") -> Report:
    """A DMARC (XML) or TLS-RPT (JSON) report from a file's bytes, packed or not."""
    text = unpack(data, name).lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] == b"{":
        return tls_report(text)
    if text[:1] == b"<":
        return dmarc_report(text)
    raise ReportRefused(f"{_shown(name)}: neither a DMARC report (XML) nor a TLS-RPT report (JSON)")


def reports_in_message(raw: bytes) -> list[Report]:
    """The reports attached to a message (or making its body), as receivers send them."""
    if len(raw) > MAX_MESSAGE:
        raise ReportRefused(f"a message of over {MAX_MESSAGE // 2**20} MiB")
    message = email.message_from_bytes(raw, policy=email.policy.default)
    found: list[Report] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        kind = part.get_content_type()
        name = part.get_filename() or ""
        looks = kind in _REPORT_TYPES or name.lower().endswith((".xml", ".xml.gz", ".zip", ".json", ".json.gz", ".gz"))
        if not looks:
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        found.append(read_report(payload, name or kind))
        if len(found) > MAX_REPORTS_PER_MESSAGE:
            raise ReportRefused(f"a message with over {MAX_REPORTS_PER_MESSAGE} reports")
    return found


_REPORT_TYPES = {
    "application/gzip",
    "application/x-gzip",
    "application/zip",
    "application/x-zip-compressed",
    "application/xml",
    "text/xml",
    "application/tlsrpt+gzip",
    "application/tlsrpt+json",
}


# -- DMARC --------------------------------------------------------------------------------------------------------
def dmarc_report(xml: bytes) -> DmarcReport:
    """A DMARC aggregate report from its XML (RFC 9990's namespace, or none as in RFC 7489)."""
    if len(xml) > MAX_UNPACKED:
        raise ReportRefused("a DMARC report over the size limit")
    head = xml.upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        raise ReportRefused("a DMARC report that declares a document type or entities: refused unread")
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise ReportRefused(f"a DMARC report that is not well-formed XML ({exc})") from None
    for element in root.iter():
        element.tag = element.tag.rsplit("}", 1)[-1]  # RFC 9990's namespace, or none
    if root.tag != "feedback":
        raise ReportRefused(f"XML whose root is <{_shown(root.tag)}>, not a DMARC report's <feedback>")
    records = root.findall("record")
    if len(records) > MAX_ROWS:
        raise ReportRefused(f"a DMARC report with over {MAX_ROWS} rows")
    return DmarcReport(
        reporter=_text(root, "report_metadata/org_name") or "(no org_name)",
        report_id=_text(root, "report_metadata/report_id", 120),
        begin=_number(_text(root, "report_metadata/date_range/begin"), "date_range/begin"),
        end=_number(_text(root, "report_metadata/date_range/end"), "date_range/end"),
        domain=_domain(_text(root, "policy_published/domain"), "policy_published/domain"),
        policy=_text(root, "policy_published/p", 20) or "(none)",
        rows=tuple(_row(record) for record in records),
    )


def _row(record: ElementTree.Element) -> DmarcRow:
    source = _text(record, "row/source_ip", 60)
    try:
        source = str(ipaddress.ip_address(source))
    except ValueError:
        raise ReportRefused(f"a row whose source_ip is not an address: {_shown(source)}") from None
    details = [
        f"dkim={_text(d, 'domain', 80)}:{_result(_text(d, 'result'))}" for d in record.findall("auth_results/dkim")
    ]
    details += [
        f"spf={_text(s, 'domain', 80)}:{_result(_text(s, 'result'))}" for s in record.findall("auth_results/spf")
    ]
    disposition = _text(record, "row/policy_evaluated/disposition", 20).lower()
    return DmarcRow(
        source=source,
        count=_number(_text(record, "row/count"), "row/count"),
        disposition=disposition if disposition in _DISPOSITIONS else "unknown",
        dkim=_result(_text(record, "row/policy_evaluated/dkim")),
        spf=_result(_text(record, "row/policy_evaluated/spf")),
        header_from=_text(record, "identifiers/header_from", 80),
        details=tuple(details[:8]),
    )


# -- TLS-RPT ------------------------------------------------------------------------------------------------------
def tls_report(text: bytes) -> TlsReport:
    """A TLS-RPT report from its JSON (RFC 8460 section 4)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ReportRefused(f"a TLS-RPT report that is not JSON ({shorten(str(exc), 60)})") from None
    if not isinstance(data, dict) or not isinstance(data.get("policies"), list):
        raise ReportRefused("JSON that is not a TLS-RPT report (no policies)")
    dates: dict[str, object] = data["date-range"] if isinstance(data.get("date-range"), dict) else {}
    policies = []
    for entry in data["policies"][:MAX_ROWS]:
        policy = entry.get("policy") if isinstance(entry, dict) else None
        summary = entry.get("summary") if isinstance(entry, dict) else None
        if not isinstance(policy, dict) or not isinstance(summary, dict):
            raise ReportRefused("a TLS-RPT policy without its policy and summary")
        failures = []
        for detail in (entry.get("failure-details") or [])[:20]:
            if isinstance(detail, dict):
                failures.append(
                    f"{shorten(str(detail.get('result-type', '?')), 40)} at "
                    f"{shorten(str(detail.get('receiving-mx-hostname', '?')), 80)}: "
                    f"{_number(detail.get('failed-session-count', 0), 'failed-session-count')}"
                )
        policies.append(
            TlsPolicyResult(
                kind=shorten(str(policy.get("policy-type", "?")), 20),
                domain=_domain(str(policy.get("policy-domain", "")), "policy-domain"),
                successful=_number(summary.get("total-successful-session-count", 0), "successful sessions"),
                failed=_number(summary.get("total-failure-session-count", 0), "failed sessions"),
                failures=tuple(failures),
            )
        )
    return TlsReport(
        reporter=shorten(str(data.get("organization-name", "(no organization-name)")), 80),
        report_id=shorten(str(data.get("report-id", "")), 120),
        begin=shorten(str(dates.get("start-datetime", "")), 30),
        end=shorten(str(dates.get("end-datetime", "")), 30),
        policies=tuple(policies),
    )


# -- files and Maildirs ---------------------------------------------------------------------------------------------
#: The most files read from one Maildir (the newest first).
MAX_FILES = 2000
_REPORT_MAGIC = (b"\x1f\x8b", b"PK\x03\x04", b"<", b"{", b"\xef\xbb\xbf")


def reports_at(paths: Iterable[Path]) -> tuple[list[Report], list[str]]:
    """The reports in files (a saved message, or a report as it was attached) and Maildirs (:data:`MESSAGE_DIRS`,
    the newest MAX_FILES messages); and what was refused, a line per file, saying why."""
    found: list[Report] = []
    refused: list[str] = []
    for path in _files(paths):
        try:
            with path.open("rb") as stream:
                data = stream.read(MAX_MESSAGE + 1)
            found += [read_report(data, path.name)] if data.startswith(_REPORT_MAGIC) else reports_in_message(data)
        except (ReportRefused, OSError) as exc:
            refused.append(f"{shorten(str(path), 100)}: {shorten(str(exc), 160)}")
    return found, refused


def _files(paths: Iterable[Path]) -> list[Path]:
    """The files to read: each path given, and a Maildir's newest messages (a message delivered or moved away while
    this lists them is left out; a link is never followed)."""
    files: list[Path] = []
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        dated = []
        for sub in MESSAGE_DIRS:
            try:
                entries = list(os.scandir(path / sub))
            except OSError:
                continue
            for entry in entries:
                try:
                    if entry.is_file(follow_symlinks=False):
                        dated.append((entry.stat(follow_symlinks=False).st_mtime, Path(entry.path)))
                except OSError:
                    continue
        files += [p for _, p in sorted(dated, reverse=True)[:MAX_FILES]]
    return files


# -- what they say, together ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """One address that sent mail as your domains, over every report: messages, DMARC passes and failures."""

    address: str
    messages: int
    passed: int
    failed: int
    reporters: tuple[str, ...]
    yours: bool


def sources(reports: Iterable[Report], ours: Sequence[str] = ()) -> list[Source]:
    """Every source in the DMARC reports, failures first; ``ours``: your server's addresses (the rest are others
    sending as you: a forger, or a service you forgot to list, such as a newsletter tool).

    >>> [(s.address, s.failed, s.yours) for s in sources([dmarc_report(SAMPLE)], ["198.51.100.25"])]
    [('198.51.100.199', 1, False), ('198.51.100.25', 0, True)]
    """
    own = {str(ipaddress.ip_address(a)) for a in ours}
    totals: dict[str, list[int]] = {}
    reporters: dict[str, set[str]] = {}
    for report in reports:
        if not isinstance(report, DmarcReport):
            continue
        for row in report.rows:
            seen = totals.setdefault(row.source, [0, 0, 0])
            seen[0] += row.count
            seen[1 if row.passed else 2] += row.count
            reporters.setdefault(row.source, set()).add(report.reporter)
    found = [Source(a, m, p, f, tuple(sorted(reporters[a])), a in own) for a, (m, p, f) in totals.items()]
    return sorted(found, key=lambda s: (-s.failed, s.yours, -s.messages, s.address))


def source_table(found: Sequence[Source]) -> str:
    """The sources as a text table: whether each is yours, and what DMARC said of its messages."""
    if not found:
        return "no DMARC report rows"
    lines = [f"{'source':40} {'messages':>8} {'pass':>6} {'fail':>6}  whose   reported by"]
    for s in found:
        whose = "yours" if s.yours else "OTHER"
        lines.append(
            f"{s.address:40} {s.messages:8} {s.passed:6} {s.failed:6}  {whose:6}  {shorten(', '.join(s.reporters), 60)}"
        )
    return "\n".join(lines)


def tls_lines(reports: Iterable[Report]) -> list[str]:
    """One line per TLS-RPT policy: who reported, which domain, sessions that succeeded and failed, and why."""
    lines = []
    for report in reports:
        if isinstance(report, TlsReport):
            for p in report.policies:
                why = f" ({'; '.join(p.failures)})" if p.failures else ""
                lines.append(f"{report.reporter}: {p.domain} ({p.kind}): {p.successful} ok, {p.failed} failed{why}")
    return lines


# -- values from strangers ------------------------------------------------------------------------------------------
def _text(element: ElementTree.Element, path: str, limit: int = 80) -> str:
    found = element.find(path)
    return shorten((found.text or "") if found is not None else "", limit)


def _shown(text: str) -> str:
    return shorten(text, 60) or "the report"


def _number(value: object, field: str) -> int:
    text = str(value).strip()
    if not text.isdigit() or len(text) > 12:
        raise ReportRefused(f"{field} is not a number: {_shown(text)}")
    return int(text)


def _result(text: str) -> str:
    word = text.strip().lower()
    return word if word in _RESULTS else "unknown"


def _domain(text: str, field: str) -> str:
    name = text.strip().rstrip(".").lower()
    if not name or len(name) > 253 or not _DOMAIN.fullmatch(name):
        raise ReportRefused(f"{field} is not a domain name: {_shown(text)}")
    return name
