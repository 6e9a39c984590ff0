"""``mailkit check`` and every plan keep an admin's secrets to themselves (security review, finding 4).

The samples are what a real server holds: a Spamhaus DQS key in rspamd's ``rbl.conf``, rspamd's controller
password, connect strings, Postfix's SASL client password inline or in a map. A file the guide wants gone is
counted, not printed; and what is not a secret (Sieve's ``${1}``) is left as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailkit.core.facts import FileState
from mailkit.core.redact import redact
from mailkit.core.resources import File, unified_diff
from mailkit.guide.part1 import Part1
from mailkit.guide.part3 import Part3
from mailkit.status.rows import Row, StatusReport

ROOT = Path(__file__).resolve().parents[2]
DQS_KEY = "x7kq2m4n9p8r3s6t1v5w0y2z4a"
OWN_RBL_CONF = f"""# my own block lists (Spamhaus DQS, free account)
rbls {{
  spamhaus {{
    rbl = "{DQS_KEY}.zen.dq.spamhaus.net";
    from = true;
  }}
}}
""".encode()

SECRET_LINES = {
    'password = "hunter2-controller";': "hunter2-controller",
    "enable_password = 'q9-enable';": "q9-enable",
    "smtp_sasl_password = alice:relaypass42": "relaypass42",
    "connect = host=db.example.org dbname=mail user=mail password=pg-s3cret": "pg-s3cret",
    "smtp_sasl_password_maps = inline:{ [relay.example.net]:587 = alice@example.org:inl1ne-pw }": "inl1ne-pw",
    "[relay.example.net]:587 alice@example.org:map-pw-77": "map-pw-77",
    "  api_key: tok-abc-123": "tok-abc-123",
    f'rbl = "{DQS_KEY}.dbl.dq.spamhaus.net";': DQS_KEY,
}


@pytest.mark.parametrize("line", SECRET_LINES)
def test_each_kind_of_secret_setting_is_redacted(line: str) -> None:
    shown = redact(line)
    assert SECRET_LINES[line] not in shown and "<redacted>" in shown
    assert unified_diff("/etc/x.conf", b"", f"{line}\n".encode()).count(SECRET_LINES[line]) == 0


def test_where_a_secret_lives_is_still_shown() -> None:
    for line in ("smtp_sasl_password_maps = lmdb:/etc/postfix/sasl_passwd", "passwd_file_path = /etc/dovecot/users"):
        assert redact(line) == line


def test_a_file_the_guide_wants_gone_is_counted_in_check_output_never_printed() -> None:
    """On a real server the guide wants rspamd's rbl.conf absent; the admin's own holds their DQS key."""
    (rbl,) = [r for r in Part3(Part1("example.org"), offline=False).rspamd_config() if r.path.endswith("/rbl.conf")]
    assert isinstance(rbl, File) and not rbl.present
    change = rbl.compare([FileState(OWN_RBL_CONF, 0o644, "root", "root")])
    assert change is not None and "the whole file goes: 7 lines, not shown" in change.diff
    row = Row("drift", "rspamd local.d", False, change.summary, "run part 3", part=3, diff=change.diff)
    report = StatusReport("mail.example.org", "outside.example.net", [row])
    for shown in (report.text(), report.markdown(), report.json()):
        assert DQS_KEY not in shown and "spamhaus" not in shown and "the whole file goes" in shown
    assert json.loads(report.json())["rows"][0]["diff"] == change.diff


def test_sieve_variables_are_not_taken_for_password_schemes() -> None:
    """Notebook 04 shows the learn-ham script: ``${1}`` must come out as it went in, or it does not parse."""
    script = (ROOT / "templates/sieve/learn-ham.sieve.j2").read_text()
    assert "${1}" in script and redact(script) == script
    assert redact('set "folder" "${name}";') == 'set "folder" "${name}";'
    assert redact("{PLAIN}hunter2") == "{PLAIN}<redacted>", "a real scheme still is"


def test_no_template_of_the_guide_is_changed_by_redaction() -> None:
    """Every file the guide renders reads the same in a plan: redaction only ever hides secrets."""
    changed = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "templates").rglob("*"))
        if p.is_file() and redact(p.read_text()) != p.read_text()
    ]
    assert changed == []
