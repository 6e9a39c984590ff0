"""Reading the mail records a domain publishes: SPF's lookup count, a DMARC lint, DKIM keys, block list answers,
the CAA records that say which CAs may issue a certificate for a name.

Pure functions over DNS answers (a ``Lookup`` is passed in), so each rule is unit-tested without a network.

>>> dmarc_problems("v=DMARC1; p=reject; pct=50")
['pct= was removed by RFC 9989 (DMARC is all or nothing now): remove it']
>>> decode_blocklist_answer("zen.spamhaus.org", ["127.255.255.254"]).listed
False
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from mailkit.domain.records import Lookup, txt_text

#: RFC 7208 section 4.6.4: at most 10 terms that cause DNS lookups, counted through include and redirect.
SPF_LOOKUP_LIMIT = 10
_SPF_LOOKUP_TERMS = ("include", "a", "mx", "ptr", "exists")


def txt_records(lookup: Lookup, name: str, prefix: str) -> list[str]:
    """The TXT strings at ``name`` that start with ``prefix`` (case-insensitive), each joined into one string."""
    texts = [txt_text(rdata) for rdata in lookup(name, "TXT")]
    return [t for t in texts if t.lower().startswith(prefix.lower())]


def spf_records(lookup: Lookup, domain: str) -> list[str]:
    """The SPF records of ``domain`` (``v=spf1`` followed by a space or nothing)."""
    found = txt_records(lookup, domain, "v=spf1")
    return [r for r in found if r.lower() == "v=spf1" or r.lower().startswith("v=spf1 ")]


@dataclass(frozen=True)
class SpfCount:
    """How many DNS-querying terms evaluating a domain's SPF record costs, and what was wrong on the way."""

    lookups: int
    problems: tuple[str, ...]


def spf_lookups(domain: str, lookup: Lookup, *, limit: int = SPF_LOOKUP_LIMIT, seconds: float = 20.0) -> SpfCount:
    """Count the lookup terms of ``domain``'s SPF record, following include: and redirect=, as a receiver does.

    Evaluation stops at the first term past ``limit`` (a receiver's permerror, RFC 7208 section 4.6.4), each name's
    record is fetched once however often it is included, and the whole walk is bounded by ``seconds``: a hostile
    tree of records costs a dozen queries, never an exponential number.

    >>> answers = {("example.org", "TXT"): ('"v=spf1 mx include:_spf.example.net -all"',),
    ...            ("_spf.example.net", "TXT"): ('"v=spf1 a ip4:198.51.100.0/24 ~all"',)}
    >>> spf_lookups("example.org", lambda n, t: answers.get((n, t), ()))
    SpfCount(lookups=3, problems=())
    """
    fetched: dict[str, list[str]] = {}
    problems: list[str] = []
    count = 0
    deadline = time.monotonic() + seconds

    def walk(name: str, path: frozenset[str]) -> None:
        nonlocal count
        if name not in fetched:
            if time.monotonic() > deadline:
                raise _Stop(f"evaluating the record took more than {seconds:.0f} s")
            fetched[name] = spf_records(lookup, name)
        records = fetched[name]
        if not records:
            problems.append(f"{name} publishes no SPF record")
            return
        if len(records) > 1:
            problems.append(f"{name} publishes {len(records)} SPF records (one is allowed: merge them)")
            return
        for term in records[0].split()[1:]:
            word = term.lstrip("+-~?").lower()
            mechanism = re.sub(r"[^a-z0-9].*", "", word)
            target = re.split(r"[:=]", term, maxsplit=1)[1] if re.search(r"[:=]", term) else ""
            if mechanism in _SPF_LOOKUP_TERMS or mechanism == "redirect":
                count += 1
                if count > limit:
                    raise _Stop(f"more than {limit} DNS lookups (RFC 7208 4.6.4): receivers stop with permerror")
            if mechanism in ("include", "redirect") and target:
                if target in path or target == name:
                    problems.append(f"{target} includes itself")
                    continue
                walk(target, path | {name})

    try:
        walk(domain, frozenset())
    except _Stop as stop:
        problems.append(str(stop))
    return SpfCount(count, tuple(problems))


class _Stop(Exception):
    """Where a receiver would stop evaluating an SPF record."""


def spf_all_qualifier(record: str) -> str:
    """How the record ends: ``-all``, ``~all``, ``?all``, ``+all``, or ``""`` when it has no all.

    >>> spf_all_qualifier("v=spf1 mx -all"), spf_all_qualifier("v=spf1 mx")
    ('-all', '')
    """
    for term in reversed(record.split()):
        if term.lower().lstrip("+-~?") == "all":
            return term if term[0] in "+-~?" else "+" + term
    return ""


# -- DMARC (RFC 9989) ------------------------------------------------------------------------------------------------
_DMARC_POLICIES = ("none", "quarantine", "reject")
_DMARC_TAGS = {
    "p": lambda v: v in _DMARC_POLICIES,
    "sp": lambda v: v in _DMARC_POLICIES,
    "np": lambda v: v in _DMARC_POLICIES,
    "adkim": lambda v: v in ("r", "s"),
    "aspf": lambda v: v in ("r", "s"),
    "t": lambda v: v in ("y", "n"),
    "psd": lambda v: v in ("y", "n", "u"),
    "fo": lambda v: all(part in ("0", "1", "d", "s") for part in v.split(":")),
    "rua": lambda v: all(u.strip().startswith("mailto:") and "@" in u for u in v.split(",")),
    "ruf": lambda v: all(u.strip().startswith("mailto:") and "@" in u for u in v.split(",")),
}
_DMARC_REMOVED = {
    "pct": "DMARC is all or nothing now",
    "rf": "there is one failure report format",
    "ri": "receivers choose the report interval",
}


def dmarc_tags(record: str) -> dict[str, str]:
    """``v=DMARC1; p=none`` as ``{"v": "DMARC1", "p": "none"}`` (names lower case, values as written)."""
    tags = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags[name.strip().lower()] = value.strip()
    return tags


def dmarc_problems(record: str) -> list[str]:
    """What RFC 9989 says is wrong with a DMARC record; ``[]`` when it is clean.

    >>> dmarc_problems("v=DMARC1; p=none; rua=mailto:postmaster@example.org")
    []
    >>> dmarc_problems("v=DMARC1; p=block")
    ['p=block is not valid (allowed: none, quarantine, reject)']
    """
    if not record.startswith("v=DMARC1"):
        return ["the record must start with v=DMARC1"]
    tags = dmarc_tags(record)
    problems = []
    if "p" not in tags:
        problems.append("no p= tag: say p=none, quarantine or reject")
    for name, value in tags.items():
        if name == "v":
            continue
        if name in _DMARC_REMOVED:
            problems.append(f"{name}= was removed by RFC 9989 ({_DMARC_REMOVED[name]}): remove it")
        elif name not in _DMARC_TAGS:
            problems.append(f"{name}= is not a DMARC tag (receivers ignore it): check its spelling")
        elif not _DMARC_TAGS[name](value):
            problems.append(f"{name}={value} is not valid (allowed: {', '.join(_allowed(name))})")
    return problems


#: RFC 9989 section 4.10: a DNS tree walk asks at most this many names (the name itself, then its shortest ancestors).
TREE_WALK_NAMES = 8


def _dmarc_at(name: str, lookup: Lookup) -> dict[str, str] | None:
    records = txt_records(lookup, f"_dmarc.{name}", "v=DMARC1")
    return dmarc_tags(records[0]) if len(records) == 1 else None


def organizational_domain(name: str, lookup: Lookup) -> str:
    """The organizational domain of ``name`` by RFC 9989's DNS tree walk (no public suffix list): from the shortest
    ancestor down, the first that says ``psd=n`` is it; one below a ``psd=y`` (a public suffix's own policy) is it;
    otherwise the shortest ancestor with a DMARC record; otherwise ``name`` itself.

    >>> records = {"_dmarc.example.org": ('"v=DMARC1; p=none"',)}
    >>> organizational_domain("mail.b.example.org", lambda n, t: records.get(n, ()))
    'example.org'
    """
    labels = name.rstrip(".").lower().split(".")
    names = [".".join(labels[i:]) for i in range(len(labels))]  # the name first, its parent next, ...
    if len(names) > TREE_WALK_NAMES:
        names = names[:1] + names[-(TREE_WALK_NAMES - 1) :]
    found = {n: _dmarc_at(n, lookup) for n in names if n.count(".") >= 1}
    shortest_first = sorted(found, key=lambda n: n.count("."))
    for n in shortest_first:
        tags = found[n]
        if tags is None:
            continue
        if tags.get("psd", "").lower() == "n":
            return n
        if tags.get("psd", "").lower() == "y":
            below = [m for m in shortest_first if m.endswith("." + n) and m.count(".") == n.count(".") + 1]
            if below:
                return below[0]
    with_record = [n for n in shortest_first if found[n] is not None]
    return with_record[0] if with_record else name.rstrip(".").lower()


def report_destinations(record: str) -> list[str]:
    """The domains a DMARC record's ``rua`` sends aggregate reports to.

    >>> report_destinations("v=DMARC1; p=none; rua=mailto:dmarc@example.org,mailto:r@reports.example.net!10m")
    ['example.org', 'reports.example.net']
    """
    destinations = []
    for uri in dmarc_tags(record).get("rua", "").split(","):
        address = uri.strip().removeprefix("mailto:").split("!", 1)[0]
        if "@" in address:
            destinations.append(address.rsplit("@", 1)[1].rstrip(".").lower())
    return list(dict.fromkeys(destinations))


def unauthorized_destinations(domain: str, record: str, lookup: Lookup) -> list[str]:
    """The report destinations outside ``domain``'s organizational domain that have not agreed to take its reports
    (no ``<domain>._report._dmarc.<destination>`` TXT starting ``v=DMARC1``): receivers send them nothing.

    >>> answers = {"_dmarc.example.org": ('"v=DMARC1; p=none"',),
    ...            "example.org._report._dmarc.reports.example.net": ('"v=DMARC1"',)}
    >>> lookup = lambda n, t: answers.get(n, ())
    >>> unauthorized_destinations("example.org", "v=DMARC1; p=none; rua=mailto:a@example.org,mailto:b@example.com",
    ...                           lookup)
    ['example.com']
    """
    own = organizational_domain(domain, lookup)
    outside = [d for d in report_destinations(record) if organizational_domain(d, lookup) != own]
    return [d for d in outside if not txt_records(lookup, f"{domain}._report._dmarc.{d}", "v=DMARC1")]


def _allowed(tag: str) -> list[str]:
    if tag in ("p", "sp", "np"):
        return list(_DMARC_POLICIES)
    return {"adkim": ["r", "s"], "aspf": ["r", "s"], "t": ["y", "n"], "psd": ["y", "n", "u"]}.get(tag, ["mailto:..."])


# -- DKIM ------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DkimKey:
    """A published DKIM key: its base64 ``p=`` value and its size in bits (0 when it cannot be read)."""

    public: str
    bits: int
    key_type: str


def dkim_key(record: str) -> DkimKey | None:
    """The key in a DKIM TXT record, or None when the record has no ``p=``.

    >>> dkim_key("v=DKIM1; k=rsa; p=") is None
    True
    """
    tags = dmarc_tags(record)
    public = "".join(tags.get("p", "").split())
    if not public:
        return None
    key_type = tags.get("k", "rsa").lower()
    try:
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import load_der_public_key

        key = load_der_public_key(base64.b64decode(public))
        bits = key.key_size if isinstance(key, rsa.RSAPublicKey) else 256
    except (ValueError, TypeError):
        bits = 0
    return DkimKey(public, bits, key_type)


# -- DNS block lists -------------------------------------------------------------------------------------------------
#: Spamhaus's answers that are not listings: the query was refused, so the check cannot tell.
SPAMHAUS_ERRORS = {
    "127.255.255.252": "the block list name is misspelt",
    "127.255.255.254": "Spamhaus refuses queries through public or open resolvers: use your own resolver or DQS",
    "127.255.255.255": "too many queries from this resolver (rate limit): use your own resolver or DQS",
}
SPAMHAUS_LISTS = {
    "127.0.0.2": "SBL (a spam source)",
    "127.0.0.3": "SBL CSS (snowshoe spam)",
    "127.0.0.4": "XBL (an infected or exploited host)",
    "127.0.0.9": "DROP (a hijacked network)",
    "127.0.0.10": "PBL ISP (the provider says: no mail from this address)",
    "127.0.0.11": "PBL (a dynamic or end-user address)",
}

#: Spamhaus's domain block list (DBL): what each answer says a domain is.
SPAMHAUS_DOMAIN_LISTS = {
    "127.0.1.2": "DBL (a spam domain)",
    "127.0.1.4": "DBL (a phishing domain)",
    "127.0.1.5": "DBL (a malware domain)",
    "127.0.1.6": "DBL (a botnet controller)",
    "127.0.1.102": "DBL (a legitimate domain abused for spam)",
    "127.0.1.103": "DBL (an abused redirector or URL shortener)",
    "127.0.1.104": "DBL (a legitimate domain abused for phishing)",
    "127.0.1.105": "DBL (a legitimate domain abused for malware)",
    "127.0.1.106": "DBL (a legitimate domain abused by a botnet controller)",
}


@dataclass(frozen=True)
class BlocklistAnswer:
    """What a block list said about an address: listed or not, whether the answer could be trusted, and why."""

    listed: bool
    conclusive: bool
    meaning: str


def decode_blocklist_answer(zone: str, answers: Sequence[str]) -> BlocklistAnswer:
    """Decode the A records a block list returned for an address (RFC 5782; Spamhaus's codes named).

    >>> decode_blocklist_answer("zen.spamhaus.org", ["127.0.0.4"]).meaning
    'listed: XBL (an infected or exploited host)'
    >>> decode_blocklist_answer("dbl.spamhaus.org", ["127.0.1.4"]).meaning
    'listed: DBL (a phishing domain)'
    >>> decode_blocklist_answer("bl.example.net", []).listed
    False
    """
    if not answers:
        return BlocklistAnswer(False, True, "not listed")
    spamhaus = zone.endswith("spamhaus.org") or zone.endswith("spamhaus.net")
    errors = [SPAMHAUS_ERRORS[a] for a in answers if a in SPAMHAUS_ERRORS]
    if errors:
        return BlocklistAnswer(False, False, f"cannot tell: {errors[0]}")
    if not all(a.startswith("127.") for a in answers):
        return BlocklistAnswer(False, False, f"cannot tell: the resolver rewrote the answer ({', '.join(answers)})")
    if spamhaus:
        named = [SPAMHAUS_LISTS.get(a) or SPAMHAUS_DOMAIN_LISTS.get(a, a) for a in answers]
        return BlocklistAnswer(True, True, "listed: " + "; ".join(named))
    return BlocklistAnswer(True, True, "listed (" + ", ".join(answers) + ")")


def blocklist_query(address: str, zone: str) -> str:
    """The name to ask for an IPv4 address on a block list (RFC 5782).

    >>> blocklist_query("198.51.100.25", "bl.example.net")
    '25.100.51.198.bl.example.net'
    """
    return ".".join(reversed(address.split("."))) + "." + zone


def domain_blocklist_query(domain: str, zone: str) -> str:
    """The name to ask for a domain on a domain block list (RFC 5782 section 2.2: the domain as it is).

    >>> domain_blocklist_query("example.org", "dbl.spamhaus.org")
    'example.org.dbl.spamhaus.org'
    """
    return f"{domain.rstrip('.').lower()}.{zone}"


# -- CAA (RFC 8659) ---------------------------------------------------------------------------------------------
#: The most names a CAA search asks: the name, then each parent up to the top-level domain (RFC 8659 section 3).
CAA_CLIMB_NAMES = 8
#: The properties RFC 8659, RFC 9495 and the CA/Browser Forum define: a CA knows these, and may know no other.
CAA_KNOWN_TAGS = ("issue", "issuewild", "iodef", "issuemail", "issuevmc", "contactemail", "contactphone")
_CAA = re.compile(r'(\d{1,3}) ([A-Za-z0-9]{1,15}) "((?:[^"\\]|\\.){0,255})"')


@dataclass(frozen=True)
class CaaRecord:
    """One CAA record: its flags (128: critical), property tag and value."""

    flags: int
    tag: str
    value: str

    @property
    def critical(self) -> bool:
        return bool(self.flags & 128)

    @property
    def issuer(self) -> str:
        """An ``issue``/``issuewild`` value's CA domain (empty: no CA), without its parameters.

        >>> CaaRecord(0, "issue", "letsencrypt.org; validationmethods=http-01").issuer
        'letsencrypt.org'
        """
        return self.value.split(";", 1)[0].strip().lower()


def caa_record(rdata: str) -> CaaRecord | None:
    """A CAA rdata as DNS gives it, or None when it does not parse (the world writes it: bounded, checked).

    >>> caa_record('0 issue "letsencrypt.org"')
    CaaRecord(flags=0, tag='issue', value='letsencrypt.org')
    >>> caa_record('300 issue "x"') is None, caa_record('0 issue letsencrypt.org') is None
    (True, True)
    """
    found = _CAA.fullmatch(rdata.strip())
    if not found or int(found[1]) > 255:
        return None
    return CaaRecord(int(found[1]), found[2].lower(), found[3])


def relevant_caa(name: str, lookup: Lookup) -> tuple[str, tuple[str, ...]]:
    """RFC 8659's relevant record set for ``name``: the CAA records at the name or at its nearest parent that has
    any, and where they were found (``("", ())``: none anywhere, so any CA may issue).

    >>> zone = {("example.org", "CAA"): ('0 issue "letsencrypt.org"',)}
    >>> relevant_caa("mail.example.org", lambda n, t: zone.get((n, t), ()))
    ('example.org', ('0 issue "letsencrypt.org"',))
    """
    labels = name.rstrip(".").lower().split(".")
    for start in range(min(len(labels), CAA_CLIMB_NAMES)):
        owner = ".".join(labels[start:])
        found = lookup(owner, "CAA")
        if found:
            return owner, tuple(found)
    return "", ()
