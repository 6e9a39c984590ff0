"""Part 3 section 14's checks: each domain's policy fetched as a sender fetches it, the id in DNS naming that policy,
and the TLS-RPT record, read through the target's resolver.

>>> from mailkit.guide.part1 import Part1
>>> from mailkit.guide.part2 import Part2
>>> sts = MtaSts(Part2(Part1(other_domains=(), mailboxes=["alice@example.org"])))
>>> records = {"_mta-sts.example.org": ('"v=STSv1; id=c0581b88c9caadd31f93"',),
...            "_smtp._tls.example.org": ('"v=TLSRPTv1; rua=mailto:postmaster@example.org"',)}
>>> table = verify(sts, lambda name, rtype: records.get(name, ()), lambda domain: sts.policy_text())
>>> [(r.name, r.ok) for r in table]  # doctest: +NORMALIZE_WHITESPACE
[('policy of example.org served over HTTPS', True), ('_mta-sts.example.org names the served policy', True),
 ('_smtp._tls.example.org asks for TLS reports', True)]
"""

from __future__ import annotations

from mailkit.core.checks import CheckResult, CheckTable
from mailkit.core.errors import MailkitError
from mailkit.domain import mtasts
from mailkit.domain.lookup import Lookup
from mailkit.domain.published import txt_records
from mailkit.guide.mta_sts import SECTION, Fetch, MtaSts, policy_id, tls_rpt_value


def verify(sts: MtaSts, lookup: Lookup, fetch: Fetch) -> CheckTable:
    """For each domain: the policy served (over HTTPS, the certificate trusted, the mx naming this server), the
    ``_mta-sts`` record with that policy's id, and the ``_smtp._tls`` record."""
    results = []
    for domain in sts.domains:
        served = f"https://mta-sts.{domain}{mtasts.POLICY_PATH}"
        text: str | None = None
        try:
            text = fetch(domain)
        except MailkitError as exc:
            fix = (
                f"{SECTION}: 'systemctl status nginx' and 'nginx -t' on the server; a certificate for mta-sts.{domain}"
            )
            results.append(CheckResult("mta-sts", f"policy of {domain} served over HTTPS", False, str(exc), fix))
            results.append(CheckResult("mta-sts", f"_mta-sts.{domain} names the served policy", False, "no policy"))
        if text is not None:
            problems = mtasts.policy_problems(mtasts.parse_policy(text), sts.hostname)
            mode = mtasts.parse_policy(text).get("mode", ["?"])[0]
            detail = "; ".join(problems) if problems else f"{served}: mode {mode}, mx {sts.hostname}"
            fix = f"{SECTION}: the policy file in /var/www/mta-sts/{domain}.txt"
            results.append(CheckResult("mta-sts", f"policy of {domain} served over HTTPS", not problems, detail, fix))
            wanted = f"v=STSv1; id={policy_id(text)}"
            found = txt_records(lookup, f"_mta-sts.{domain}", "v=STSv1")
            named = [r for r in found if _id_of(r) == policy_id(text)]
            seen = "; ".join(found) or "no record"
            results.append(
                CheckResult(
                    "mta-sts",
                    f"_mta-sts.{domain} names the served policy",
                    len(found) == 1 and bool(named),
                    f"{seen}" if named else f"{seen}: senders keep the policy they have (wanted {wanted})",
                    f"{SECTION}: publish the id of the policy as served, after the file",
                )
            )
        rpt = txt_records(lookup, f"_smtp._tls.{domain}", "v=TLSRPTv1")
        results.append(
            CheckResult(
                "tls-rpt",
                f"_smtp._tls.{domain} asks for TLS reports",
                rpt == [tls_rpt_value(domain)],
                "; ".join(rpt) or "no record",
                f"{SECTION}: '_smtp._tls.{domain}. TXT \"{tls_rpt_value(domain)}\"'",
            )
        )
    return CheckTable(results)


def _id_of(record: str) -> str:
    """The ``id=`` tag of an ``_mta-sts`` record ('' if none).

    >>> _id_of("v=STSv1; id=20261207")
    '20261207'
    """
    tags = dict(t.strip().partition("=")[::2] for t in record.split(";") if "=" in t)
    return tags.get("id", "")
