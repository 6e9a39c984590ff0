"""Every plan also says what to type by hand on your own server (issue 23, item 4): the same change as commands,
made by each resource from what it runs itself, so the two cannot drift; services checked and reloaded last."""

from __future__ import annotations

import dataclasses
import re
import shlex
import subprocess

from mailkit.core.context import HostFacts
from mailkit.core.display import BY_HAND, by_hand, plan_html, plan_text
from mailkit.core.facts import FileState
from mailkit.core.resources import (
    CANDIDATE,
    Directory,
    File,
    GeneratedKey,
    LookupTable,
    MasterService,
    Packages,
    PasswdFile,
    PasswdUser,
    Postconf,
    SieveScript,
    SystemAccount,
)
from mailkit.core.resources.keys import GeneratedSecret
from mailkit.core.resources.nftables import Firewall
from mailkit.core.values import Password
from mailkit.guide.part1 import Part1
from mailkit.guide.part2 import Part2
from mailkit.guide.part3 import Part3
from mailkit.guide.part4 import Part4

ABSENT = FileState(None)


def _staged_lines(change) -> list[str]:
    """The postconf lines the transaction runs on its stage copy, with the stage's ``-c "$pf"`` taken out."""
    stage = change.script("c1").stage
    return [line.replace(' -c "$pf"', "") for line in stage.splitlines() if line.startswith("postconf")]


def _edits(lines) -> list[tuple[str, str]]:
    """Each (option, setting) the lines make, however many a line holds."""
    return [(argv[1], each) for argv in map(shlex.split, lines) for each in argv[2:]]


def test_main_cf_settings_by_hand_are_the_commands_the_apply_runs_on_its_stage_copy():
    change = Postconf({"myhostname": "mail.example.org", "smtpd_banner": "$myhostname ESMTP", "relayhost": None})
    change = change.compare([{"relayhost": "[smtp.example.net]:587", "myhostname": "old.example.org"}])
    assert change.by_hand == ("postconf -e myhostname=mail.example.org", "postconf -e 'smtpd_banner=$myhostname ESMTP'",
                              "postconf -X relayhost")  # fmt: skip
    assert _edits(change.by_hand) == _edits(_staged_lines(change))


def test_a_master_cf_service_by_hand_is_postconf_m_and_p_as_the_apply_runs_them():
    service = MasterService("submission", "inet", "smtpd", options={"syslog_name": "postfix/submission"})
    change = service.compare([("submission inet n - - - - smtpd", {"smtpd_tls_security_level": "encrypt"})])
    assert list(change.by_hand) == _staged_lines(change)  # one setting per command there already
    assert change.by_hand == (
        "postconf -Me 'submission/inet=submission inet n - - - - smtpd'",
        "postconf -Pe submission/inet/syslog_name=postfix/submission",
        "postconf -PX submission/inet/smtpd_tls_security_level",
    )


def test_a_file_by_hand_is_edited_owned_and_checked_on_its_live_path():
    wanted = File(
        "/etc/dovecot/conf.d/99-mailkit.conf", "x = 1\n", group="dovecot", mode=0o640,
        check=("doveconf", "-n", "-c", CANDIDATE),
    )  # fmt: skip
    change = wanted.compare([ABSENT])
    assert change.by_hand == (
        "editor /etc/dovecot/conf.d/99-mailkit.conf   # make it read as the diff above shows",
        "chown root:dovecot /etc/dovecot/conf.d/99-mailkit.conf",
        "chmod 640 /etc/dovecot/conf.d/99-mailkit.conf",
        "doveconf -n -c /etc/dovecot/conf.d/99-mailkit.conf",
    )
    # a file of a service that checks its whole configuration before its reload: that check, at the plan's end
    used = dataclasses.replace(wanted, service="dovecot").compare([ABSENT])
    assert used.by_hand == change.by_hand[:3]
    assert by_hand([used])[-2:] == ["doveconf -n > /dev/null", "systemctl reload dovecot"]
    # a new file that root's umask already makes right: only the edit
    assert File("/etc/mailname", "example.org\n").compare([ABSENT]).by_hand == (
        "editor /etc/mailname   # make it read as the diff above shows",
    )
    # only the mode differs: no edit, only the mode
    mode_only = wanted.compare([FileState(b"x = 1\n", 0o644, "root", "root")])
    assert not any(line.startswith("editor") for line in mode_only.by_hand)
    assert "chmod 640 /etc/dovecot/conf.d/99-mailkit.conf" in mode_only.by_hand
    gone = File("/etc/old.conf", present=False).compare([FileState(b"a\n", 0o644, "root", "root")])
    assert gone.by_hand == ("rm -f -- /etc/old.conf",)


def test_a_lookup_table_by_hand_is_edited_then_compiled_with_postmap_and_a_secret_one_kept_private():
    table = LookupTable("/etc/postfix/sasl_passwd", "[smtp.example.net]:587 me:hunter2\n", mode=0o600, secret=True)
    typed = table.compare([ABSENT, None]).by_hand
    assert typed[0] == "editor /etc/postfix/sasl_passwd   # secret content, not shown here"
    assert "postmap lmdb:/etc/postfix/sasl_passwd" in typed
    assert "chmod 600 /etc/postfix/sasl_passwd.lmdb" in typed
    assert not any("hunter2" in line for line in typed)  # the content is never in a command


def test_keys_and_passwords_are_made_on_the_server_by_hand_too_and_never_shown():
    key = GeneratedKey("/etc/rspamd/dkim/example.org.key", group="_rspamd", mode=0o640)
    assert key.compare([None]).by_hand == (
        "(umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
        "-out /etc/rspamd/dkim/example.org.key)",
        "openssl pkey -in /etc/rspamd/dkim/example.org.key -check -noout",
        "chown root:_rspamd /etc/rspamd/dkim/example.org.key",
        "chmod 640 /etc/rspamd/dkim/example.org.key",
    )
    users = PasswdFile((PasswdUser("alice@example.org", Password("correct horse battery")),))
    typed = users.compare([ABSENT]).by_hand
    assert typed[0] == "doveadm pw -s SHA512-CRYPT   # asks for alice@example.org's password twice"
    assert not any("correct horse" in line for line in typed)
    assert "chown root:dovecot /etc/dovecot/users" in typed
    # a secret whose recipe is not what a person types says what is
    part1 = Part1()
    filter_config = Part4(Part3(part1), Part2(part1)).filter_config(HostFacts("trixie", None, None))
    controller = next(r for r in filter_config if isinstance(r, GeneratedSecret))
    assert controller.compare([None]).by_hand[0].startswith("rspamadm pw")


def test_packages_by_hand_answer_debconf_first_and_accounts_are_made_with_their_ids():
    packages = Packages(
        ("postfix", "postfix-lmdb"), preseed=("postfix postfix/main_mailer_type select No configuration",)
    )
    typed = packages.compare([None, None, None]).by_hand
    assert typed == (
        "debconf-set-selections <<'EOF'\npostfix postfix/main_mailer_type select No configuration\nEOF",
        "apt-get update",
        "apt-get install postfix postfix-lmdb",
    )
    # lists the apply finds fresh are skipped by it; a person cannot tell, and the notebook says the same everywhere
    assert packages.compare([(60, False), None, None]).by_hand == typed
    account = SystemAccount("vmail", "vmail", 5000, 5000, "/var/vmail").compare([None, None])
    assert account.by_hand == (
        "groupadd --system --gid 5000 vmail",
        "useradd --system --uid 5000 --gid 5000 --home-dir /var/vmail --no-create-home --shell /usr/sbin/nologin vmail",
    )
    assert Directory("/var/vmail", "vmail", "vmail", 0o750).compare([None]).by_hand == (
        "install -d -o vmail -g vmail -m 750 /var/vmail",
    )


def test_a_sieve_script_by_hand_is_compiled_in_place_with_the_extensions_it_needs():
    script = SieveScript(
        "/etc/dovecot/sieve/learn-spam.sieve", "require \"vnd.dovecot.pipe\";\n", group="dovecot", mode=0o644,
        plugins=("sieve_imapsieve",), extensions=("vnd.dovecot.pipe",), service="dovecot",
    )  # fmt: skip
    typed = script.compare([ABSENT, None]).by_hand
    assert "sievec -P sieve_imapsieve -x +vnd.dovecot.pipe /etc/dovecot/sieve/learn-spam.sieve " \
        "/etc/dovecot/sieve/learn-spam.svbin" in typed  # fmt: skip
    assert "chown root:dovecot /etc/dovecot/sieve/learn-spam.svbin" in typed


def test_a_firewall_by_hand_is_checked_then_loaded_with_a_timer_that_undoes_it():
    change = Firewall((22, 25)).compare([ABSENT, frozenset({22}), False, False])
    typed = change.by_hand
    assert typed.index("nft -c -f /etc/nftables.conf") < typed.index("nft -f /etc/nftables.conf")
    undo = next(line for line in typed if line.startswith("systemd-run"))
    assert typed.index(undo) < typed.index("nft -f /etc/nftables.conf")
    assert "systemctl enable nftables" in typed


def test_a_plan_by_hand_ends_with_each_service_checked_then_reloaded_in_the_order_the_apply_uses():
    changes = [
        Postconf({"myhostname": "mail.example.org"}).compare([{}]),
        File("/etc/rspamd/local.d/x.conf", "a = 1;\n", service="rspamd").compare([ABSENT]),
        File("/etc/dovecot/conf.d/x.conf", "a = 1\n", service="dovecot", restart=True).compare([ABSENT]),
    ]
    typed = by_hand(changes)
    assert typed[-6:] == [
        "doveconf -n > /dev/null",
        "systemctl restart dovecot",
        "rspamadm configtest",
        "systemctl restart rspamd",
        "postfix check",
        "systemctl reload postfix",
    ]
    assert typed[0] == "postconf -e myhostname=mail.example.org"


def test_the_commands_are_shown_after_the_plan_in_text_and_html_and_are_valid_shell():
    changes = [
        Packages(("postfix",), preseed=("postfix postfix/mailname string mail.example.org",)).compare([None, None]),
        Postconf({"smtpd_banner": "$myhostname ESMTP", "mydestination": ""}).compare([{}]),
        File("/etc/x-y", "a\n", mode=0o600).compare([ABSENT]),
        Firewall((22, 25)).compare([ABSENT, frozenset({22}), False, False]),
    ]
    text = plan_text(changes)
    assert BY_HAND in text
    assert text.index(BY_HAND) > text.index("* install postfix")
    shown = plan_html(changes)
    assert '<pre class="by-hand"' in shown and "postconf -e" in shown
    script = "\n".join(by_hand(changes))
    parsed = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True, check=False)
    assert parsed.returncode == 0, parsed.stderr


def test_a_secret_in_a_setting_is_redacted_in_the_commands_as_in_the_diff():
    change = Postconf({"smtp_sasl_password_maps": "inline:{ [smtp.example.net]:587=me:hunter2hunter2 }"})
    typed = by_hand([change.compare([{}])])
    assert not any("hunter2" in line for line in typed)
    assert re.search(r"smtp_sasl_password_maps=", typed[0])


def test_no_change_has_nothing_to_type():
    assert by_hand([]) == []
    assert BY_HAND not in plan_text([])


def test_a_new_systemd_unit_by_hand_is_followed_by_daemon_reload_and_its_timer_enabled():
    from mailkit.guide import backups

    units = [
        r for r in backups.install(backups._space()) if isinstance(r, File) and r.path.endswith((".service", ".timer"))
    ]
    typed = by_hand([c for c in (u.compare([ABSENT]) for u in units) if c is not None])
    assert typed[-2:] == ["systemctl daemon-reload", f"systemctl enable --quiet --now {backups.UNIT}.timer"]
    assert typed.index(f"editor {backups.TIMER_FILE}   # make it read as the diff above shows") < len(typed) - 2
