"""The server's own resolver (part 3 section 13) after its name server was silent for a moment.

In a DNS world of its own (the lab, a class room) the one root server goes quiet whenever its records change or it
restarts. With Debian's settings Unbound then waits longer for it after each unanswered question and, once it counts
it down, answers SERVFAIL to everything for up to minutes after it is back: CI saw a mail host just booted resolve
nothing for two to three minutes (its mail deferred "Domain not found", the DANE row red). Section 13's settings
(:data:`mailkit.guide.dane.KEEP_ASKING_A_SILENT_ROOT`) keep the wait at most 2 s and the questions going (bookworm's
Unbound asks again once it forgot the server was silent, at most 5 s later). Measured with Debian's settings on
trixie, after the same 12 s of silence: a wait of 12 s, names again 11.4 s after the server was back. On every release
the lab runs.
"""

from __future__ import annotations

import time

import pytest

from mailkit.core.ssh import Connection
from mailkit.lab import network
from mailkit.lab.dns import NAMESERVER
from mailkit.lab.lab import Lab
from mailkit.lab.lab_target import lab_connection
from mailkit.lab.layout import HOSTS

pytestmark = pytest.mark.lab

MAIL = HOSTS["mail"]
#: Seconds the name server is silent for the mail host (its DNS packets dropped on the way, answered by nothing).
SILENCE = 12
#: The most Unbound may wait for an answer (ms): section 13's infra-cache-max-rtt.
MOST_WAIT_MS = 2000
#: Seconds within which names resolve again once the name server answers (bookworm's Unbound: up to 5 s to forget it
#: was silent, then the questions of a validated answer).
BACK_WITHIN = 10
#: Questions every half second for ``{seconds}``, each a name never asked (no cached answer stands in for the server).
ASK = (
    "end=$(( $(date +%s) + {seconds} )); i=0; while [ $(date +%s) -lt $end ]; do i=$((i+1)); "
    "timeout 3 getent hosts silent$i.example.net >/dev/null & sleep 0.5; done; wait"
)


def _wait_ms(mail: Connection) -> int:
    """How long (ms) the mail host's Unbound waits now for the lab's name server's answer (its retransmit timeout)."""
    infra = mail.run(["unbound-control", "dump_infra"]).stdout
    for line in infra.splitlines():
        words = line.split()
        if words[:2] == [NAMESERVER.address, "."] and "rto" in words:
            return int(words[words.index("rto") + 1])
    raise AssertionError(f"Unbound knows nothing of {NAMESERVER.address}:\n{infra}")


def _resolves(mail: Connection) -> bool:
    return mail.run(["timeout", "2", "getent", "hosts", "outside.example.net"], check=False).ok


def test_the_servers_resolver_keeps_asking_a_name_server_that_was_silent(finished: Lab) -> None:
    mail = lab_connection("mail")
    try:
        mail.run(["systemctl", "restart", "unbound"])  # nothing known of the name server, as after a boot
        network.block_outbound(MAIL, 53, silent=True)
        try:
            mail.run(["sh", "-c", ASK.format(seconds=SILENCE)], timeout=SILENCE + 30)
            waited = _wait_ms(mail)
            assert not _resolves(mail), "the name server was silent, yet a name resolved: the test proves nothing"
        finally:
            network.unblock_outbound(MAIL, 53)
        back = time.monotonic()
        while not _resolves(mail):
            assert time.monotonic() - back < BACK_WITHIN, (
                f"no name resolved within {BACK_WITHIN} s of the name server's return (Unbound waited {waited} ms)"
            )
            time.sleep(0.2)
        assert waited <= MOST_WAIT_MS, f"Unbound's wait for a silent name server grew to {waited} ms"
    finally:
        mail.close()
