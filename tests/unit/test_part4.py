"""Part 4's desired state, without a host: postscreen, rspamd files, Sieve for both Dovecots, refusals of bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mailkit.core.facts import FileState
from mailkit.core.resources import File, GeneratedSecret, MasterService, Packages, SieveScript
from mailkit.core.values import ValueRejected
from mailkit.guide.part1 import Part1
from mailkit.guide.part2 import RELEASE_FACTS, Part2
from mailkit.guide.part3 import Part3
from mailkit.guide.part4 import (
    CONTROLLER_PASSWORD,
    LEARN_SOCKET,
    POSTSCREEN_SERVICES,
    Part4,
    redis_package,
)

BOOKWORM, TRIXIE = RELEASE_FACTS


def part4(**kwargs: object) -> Part4:
    part1 = Part1()
    return Part4(Part3(part1), Part2(part1), **kwargs)  # type: ignore[arg-type]


def test_postscreen_takes_port_25_and_only_port_25() -> None:
    services = {r.key: r for r in part4().postscreen() if isinstance(r, MasterService)}
    assert set(services) == set(POSTSCREEN_SERVICES)
    assert services["smtp/inet"].entry == "smtp inet n - y - 1 postscreen"
    assert services["smtpd/pass"].entry == "smtpd pass - - y - - smtpd"
    assert "submission/inet" not in services, "submission never meets postscreen"
    settings = part4().postscreen()[-1].settings  # type: ignore[attr-defined]
    assert settings["postscreen_greet_action"] == "drop"
    assert settings["postscreen_dnsbl_action"] == "enforce"


def test_block_lists_are_checked_and_none_means_the_setting_is_removed() -> None:
    assert part4(blocklists=("zen.spamhaus.org=127.0.0.[2..11]*3",)).blocklists  # Postfix's own range syntax
    settings = part4(blocklists=()).postscreen()[-1].settings  # type: ignore[attr-defined]
    assert settings["postscreen_dnsbl_sites"] is None
    for bad in ("bl.example.net*x", "; rm -rf /*3", "nodots*3", "bl.example.net*3, other.example.net*1"):
        with pytest.raises(ValueRejected, match="BLOCKLISTS"):
            part4(blocklists=(bad,))


def test_scores_must_be_ordered() -> None:
    with pytest.raises(ValueRejected, match="JUNK_SCORE"):
        part4(junk_score=20)
    with pytest.raises(ValueRejected, match="DNSBL_THRESHOLD"):
        part4(dnsbl_threshold=0)


def test_restrictions_let_logged_in_users_say_any_helo() -> None:
    (postconf,) = part4().restrictions()
    helo = postconf.settings["smtpd_helo_restrictions"]  # type: ignore[attr-defined]
    assert helo.index("permit_sasl_authenticated") < helo.index("reject_non_fqdn_helo_hostname")
    assert "reject_unknown_helo_hostname" not in helo


def test_bayes_store_is_redis_before_trixie_and_valkey_after() -> None:
    assert redis_package("bookworm") == "redis-server"
    assert redis_package("trixie") == redis_package("sid") == "valkey-server"
    (packages,) = part4().install(TRIXIE)
    assert isinstance(packages, Packages) and "valkey-server" in packages.names


def test_rspamd_files_lab_only_test_strings_and_greylisting_off() -> None:
    def files(p: Part4) -> dict[str, File]:
        return {r.path: r for r in p.filter_config(TRIXIE) if isinstance(r, File)}

    lab, real = files(part4(offline=True)), files(part4())
    assert lab["/etc/rspamd/local.d/options.inc"].present and not real["/etc/rspamd/local.d/options.inc"].present
    assert b"enabled = false" in real["/etc/rspamd/local.d/greylist.conf"].data
    assert b"greylist = null" in real["/etc/rspamd/local.d/actions.conf"].data
    on = files(part4(greylisting=True))
    assert b"enabled = true" in on["/etc/rspamd/local.d/greylist.conf"].data
    assert b"greylist = 4" in on["/etc/rspamd/local.d/actions.conf"].data
    headers = real["/etc/rspamd/local.d/milter_headers.conf"].data
    assert b'"authentication-results"' in headers


def test_controller_trusts_no_address_and_keeps_only_a_hash_made_on_the_host() -> None:
    resources = part4().filter_config(TRIXIE)
    controller = next(r for r in resources if isinstance(r, File) and r.path.endswith("worker-controller.inc"))
    text = controller.data.decode()
    assert "/override.d/" in controller.path, "local.d would merge with Debian's secure_ip, not replace it"
    assert "secure_ip = [];" in text and f'"{LEARN_SOCKET} mode=0666"' in text
    assert 'bind_socket = "localhost:11334"' in text
    assert CONTROLLER_PASSWORD in text and "q1" not in text.replace('"q1"', "")
    (secret,) = [r for r in resources if isinstance(r, GeneratedSecret)]
    assert (secret.path, secret.group, secret.mode) == (CONTROLLER_PASSWORD, "_rspamd", 0o640)
    change = secret.compare([None])
    assert change is not None and "never shown" in change.diff
    assert secret.compare([("file", 0o640, "root", "_rspamd")]) is None, "an existing password is kept"


@pytest.mark.parametrize("facts", [BOOKWORM, TRIXIE], ids=lambda f: f.release)
def test_dovecot_conf_gains_sieve_in_each_generations_syntax(facts: object) -> None:
    p = part4()
    plain = p.part2.dovecot_config(facts)  # type: ignore[arg-type]
    (conf,) = [r for r in p.sieve(facts) if isinstance(r, File) and r.path == "/etc/dovecot/dovecot.conf"]  # type: ignore[arg-type]
    text = conf.data.decode()
    assert "protocols = imap lmtp\n" in plain and "sieve" not in plain
    assert "protocols = imap lmtp sieve\n" in text and "port = 4190" in text
    assert conf.restart, "a new listener needs a restart, not a reload"
    if facts.release == "bookworm":  # type: ignore[attr-defined]
        assert "sieve_after = /etc/dovecot/sieve/spam-to-junk.sieve" in text
        assert "imapsieve_mailbox2_from = Junk" in text and "sieve_script" not in text
    else:
        assert re.search(r"sieve_script spam-to-junk \{\s+type = after", text)
        assert re.search(r"imapsieve_from Junk \{\s+sieve_script learn-ham \{\s+type = before\s+cause = copy", text)
        assert "plugin {" not in text and "imapsieve_mailbox" not in text


def test_learning_scripts_skip_trash_and_use_the_private_socket() -> None:
    resources = {r.path: r for r in part4().sieve(TRIXIE) if isinstance(r, File)}
    ham = resources["/etc/dovecot/sieve/learn-ham.sieve"].data.decode()
    assert 'if string "${mailbox}" "Trash"' in ham and ham.index("Trash") < ham.index("pipe")
    program = resources["/usr/local/lib/dovecot/sieve-pipe/rspamd-learn"]
    assert program.mode == 0o755 and f"-h {LEARN_SOCKET}" in program.data.decode()
    scripts = [r for r in resources.values() if isinstance(r, SieveScript)]
    assert len(scripts) == 3
    assert all(s.plugins for s in scripts if "learn" in s.path)


def test_sieve_script_is_compiled_before_it_goes_live_then_again_in_place() -> None:
    script = SieveScript(
        "/etc/dovecot/sieve/x.sieve", "keep;\n", plugins=("sieve_extprograms",), extensions=("vnd.dovecot.pipe",)
    )
    unchanged = FileState(b"keep;\n", 0o644, "root", "root")
    assert script.compare([unchanged, ("file", 0o644, "root", "root")]) is None
    change = script.compare([unchanged, None])
    assert change is not None and change.summary == "compile /etc/dovecot/sieve/x.sieve", "a missing binary is made"
    fragment = script.script("c1")
    assert 'check /etc/dovecot/sieve/x.sieve sievec -P sieve_extprograms -x +vnd.dovecot.pipe "$c1"' in fragment.check
    assert fragment.commit.index('mv -f -- "$c1"') < fragment.commit.index("sievec")
    assert "/etc/dovecot/sieve/x.svbin" in fragment.commit
    assert 'rm -f -- "$c1.svbin"' in fragment.commit, "the validated candidate's binary is not left behind"
    with pytest.raises(ValueRejected):
        SieveScript("/etc/dovecot/sieve/x.txt", "keep;\n")
    with pytest.raises(ValueRejected):
        SieveScript("/etc/dovecot/sieve/x.sieve", "keep;\n", plugins=("x; rm -rf /",))


def test_every_part4_postfix_setting_is_explained_with_its_reference_link() -> None:
    import json

    notebook = Path(__file__).resolve().parents[2] / "notebooks" / "04-spam-inbound.ipynb"
    cells = json.loads(notebook.read_text())["cells"]
    prose = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    settings = part4().settings()
    assert len(settings) >= 10
    missing = sorted(s for s in settings if f"(https://www.postfix.org/postconf.5.html#{s})" not in prose)
    assert not missing, f"settings written without a linked explanation: {missing}"
    anchors = set(re.findall(r'<a id="section-(\d+)"></a>', prose))
    from mailkit.guide import part4_checks

    named = set(re.findall(r"section (\d+)", Path(part4_checks.__file__).read_text()))
    assert named and named <= anchors


def test_a_reply_is_shortened_with_a_mark_and_never_loses_the_block_lists_name() -> None:
    from mailkit.guide.part4_checks import _reply

    listed = "5.7.1 Service unavailable; client [198.51.100.66] blocked using bl.example.net"
    assert _reply({"rcpt": [550, listed]}, "rcpt") == f"550 {listed}", "the row promises the list named"
    long = _reply({"rcpt": [554, "5.7.1 " + "word " * 60]}, "rcpt")
    assert long.endswith("...") and len(long) <= 90, long
    assert _reply({"error": "ConnectionResetError: \x1b[31m" + "x" * 200}, "rcpt").endswith("..."), "cut, marked"
