"""Workshop mode with three students on the lab: hosts, logins, notebooks, a reset to the end of part 1, the board,
and nothing of them left afterwards. On bookworm only (the students' hosts boot the lab's own release): the suite's
bookworm half is the shorter one (`./run tests` runs each release's half side by side), and the guide on trixie is
tested by the other modules.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailkit.domain.records import lookup_at
from mailkit.lab.dns import NAMESERVER, reverse_name
from mailkit.lab.lab import Lab
from mailkit.lab.layout import student_spec
from mailkit.lab.network import lab_namespaces

pytestmark = pytest.mark.lab
#: The release whose half of the suite runs workshop mode.
WORKSHOP_RELEASE = "bookworm"
STUDENTS = 3


def mailkit(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "mailkit.cli", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def students(lab: Lab) -> Iterator[Lab]:
    if lab.status()["release"] != WORKSHOP_RELEASE:
        pytest.skip(f"workshop mode is tested on {WORKSHOP_RELEASE}")
    up = mailkit("workshop", "up", "--students", str(STUDENTS), "--release", WORKSHOP_RELEASE)
    assert up.returncode == 0, up.stdout + up.stderr
    yield lab
    down = mailkit("workshop", "down")  # the last test has done it already, unless an earlier one failed
    assert down.returncode == 0, down.stdout + down.stderr


def test_each_student_has_a_host_with_names_in_dns(students: Lab) -> None:
    lookup = lookup_at(NAMESERVER.address)
    assert [n for n in students.hosts() if n.startswith("student")] == ["student01", "student02", "student03"]
    for number in range(1, STUDENTS + 1):
        spec = student_spec(number)
        assert lookup(spec.fqdn, "A") == (spec.address,) and lookup(spec.fqdn, "AAAA") == (spec.address6,)
        assert lookup(reverse_name(spec.address), "PTR") == (f"{spec.fqdn}.",)
        assert lookup(spec.domain, "MX") == (f"10 {spec.fqdn}.",)
        assert lookup(f"b.{spec.domain}", "MX") == (f"10 {spec.fqdn}.",)
    assert students.status()["state"] == "up"


def test_a_students_key_opens_their_host_and_no_other(students: Lab, tmp_path: Path) -> None:
    config = students.student_key("student01").parent / "ssh_config"
    own = subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", "student01", "cat", "/etc/hostname"],
                         capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert own.returncode == 0 and own.stdout.strip() == "student01", own.stderr
    other = tmp_path / "ssh_config"
    other.write_text(config.read_text().replace("student01", "student02").replace(
        student_spec(1).address, student_spec(2).address).replace(
        str(students.student_key("student02")), str(students.student_key("student01"))))  # fmt: skip
    assert str(students.student_key("student01")) in other.read_text()
    refused = subprocess.run(["ssh", "-F", str(other), "-o", "BatchMode=yes", "student02", "true"],
                             capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused.stderr


def test_a_student_logs_in_from_their_own_account_with_nothing_of_roots(students: Lab) -> None:
    """Security review, finding 7: the class folder is all a student needs (key, config and a known_hosts with
    their host's key only); an account that is not root, here ``nobody``, logs in with it, to that host only."""
    top = Path(tempfile.mkdtemp(prefix="mailkit-class-"))
    try:
        top.chmod(0o755)
        result = mailkit("workshop", "notebooks", str(top))
        assert result.returncode == 0, result.stdout + result.stderr
        ssh = top / "student01" / "ssh"
        subprocess.run(["chown", "-R", "nobody", str(top / "student01")], check=True)
        known = (ssh / "known_hosts").read_text().splitlines()
        assert len(known) == 2 and ",student01 " in known[0] and ",outside " in known[1], known
        assert str(students.known_hosts) not in (ssh / "config").read_text()

        def as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
            login = ["ssh", "-F", str(ssh / "config"), "-o", "BatchMode=yes", *argv]
            return subprocess.run(["runuser", "-u", "nobody", "--", *login],
                                  capture_output=True, text=True, timeout=30, check=False)  # fmt: skip

        own = as_nobody("student01", "cat", "/etc/hostname")
        assert own.returncode == 0 and own.stdout.strip() == "student01", own.stderr
        other = as_nobody("-o", f"HostName={student_spec(2).address}", "student01", "true")
        assert other.returncode == 255 and "Host key verification failed" in other.stderr, other.stderr
        outside = as_nobody("outside", "id", "-un", "&&", "id", "-u")  # their account for the outside checks: no root
        assert outside.returncode == 0 and outside.stdout.split() != ["student01", "0"], outside.stderr
        assert outside.stdout.split()[0] == "student01", outside.stdout
        peek = as_nobody("outside", "ls", "/home/student02")  # the outside host is shared: homes are private
        assert peek.returncode != 0 and "Permission denied" in peek.stderr, peek.stdout + peek.stderr
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_a_student_publishes_their_own_records_with_their_own_key_and_no_one_elses(
    students: Lab, tmp_path: Path
) -> None:
    """Security review, finding 7: publishing needs no lab secret: the class folder's DNS key (RFC 2136, as
    ``mailkit registrar rfc2136`` sends to any DNS server that takes updates) changes the student's names only."""
    result = mailkit("workshop", "notebooks", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    folder = tmp_path / "student01"
    assert (folder / "dns.key").stat().st_mode & 0o777 == 0o600
    env = (folder / "env").read_text()
    assert "--key-file" in env and str(students.dir) not in env, "nothing of the lab's own in a student's settings"
    lookup = lookup_at(NAMESERVER.address)

    def publish(text: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "mailkit.cli", "registrar", "rfc2136", "--server", NAMESERVER.address]
        return subprocess.run([*argv, "--key-file", str(folder / "dns.key")], input=text,
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip

    own = publish('_test.student01.example.org. 60 IN TXT "mailkit own key"\n')
    assert own.returncode == 0, own.stderr
    assert lookup("_test.student01.example.org", "TXT") == ('"mailkit own key"',)
    for name in ("_test.student02.example.org", "_test.example.org"):
        refused = publish(f'{name}. 60 IN TXT "not yours"\n')
        assert refused.returncode == 1 and "REFUSED" in refused.stderr, refused.stderr
        assert lookup(name, "TXT") == ()
    gone = publish("; delete _test.student01.example.org. TXT\n")
    assert gone.returncode == 0 and lookup("_test.student01.example.org", "TXT") == ()


_RAW_UDP = """use Socket;
my ($src, $dst, $dport, $payload) = @ARGV;
socket(my $s, AF_INET, SOCK_RAW, 255) or die "raw socket: $!";
my $udp = pack("nnnn", 40000, $dport, 8 + length($payload), 0) . $payload;
my $ip = pack("CCnnnCCna4a4", 0x45, 0, 20 + length($udp), 0x1234, 0, 64, 17, 0, inet_aton($src), inet_aton($dst));
send($s, $ip . $udp, 0, pack_sockaddr_in(0, inet_aton($dst))) or die "send: $!";
"""
_LISTEN = """import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(4)
print("listening", flush=True)
try:
    while True:
        data, peer = s.recvfrom(100)
        print(peer[0], data.decode(), flush=True)
except OSError:
    pass
"""


def test_a_students_root_is_not_the_machines(students: Lab) -> None:
    """Security review, finding 7: each host boots in a user namespace of its own: UID 0 there is an unprivileged
    UID here, in a range of its own. Its network namespace belongs to that user namespace, as a rented server's
    network is its root's: it may set addresses and a firewall (the switch below decides what leaves, next test)."""
    with students.connection("student01") as student:
        mapped = student.run(["cat", "/proc/self/uid_map"]).stdout.split()
        assert mapped[0] == "0" and int(mapped[1]) >= 65536 and mapped[2] == "65536", mapped
        owned = student.run(["ip", "addr", "add", "198.51.100.250/32", "dev", "lo"], check=False)
        assert owned.ok, owned.stderr
        student.run(["ip", "addr", "del", "198.51.100.250/32", "dev", "lo"])
        assert student.run(["systemctl", "is-system-running"], check=False).stdout.strip() == "running"
        machine = student.run(["cat", "/proc/1/uid_map"]).stdout.split()
        assert machine == mapped, "the host's init is in the same namespace: nothing of the machine's in sight"
    with students.connection("student02") as other:
        assert other.run(["cat", "/proc/self/uid_map"]).stdout.split()[1] != mapped[1], "a range of its own"


def test_the_switch_lets_no_host_pose_as_another(students: Lab) -> None:
    """Below the host, the switch port: raw packets the student's root sends from the mail host's address (after
    taking that address on its own eth0) never arrive; the same packets from the student's own address do."""
    own, mail, outside = student_spec(1).address, "198.51.100.25", "198.51.100.100"
    with students.connection("outside") as receiver, students.connection("student01") as student:
        student.run(["sh", "-c", "cat > /tmp/rawudp.pl"], input=_RAW_UDP)
        student.run(["ip", "addr", "add", f"{mail}/32", "dev", "eth0"])
        listener = receiver.start(["python3", "-c", _LISTEN, "40123"])
        try:
            seen = b""
            while b"listening" not in seen:
                seen += listener.read(1)
            for source, label in ((own, "own"), (mail, "posing-as-mail")):
                student.run(["perl", "/tmp/rawudp.pl", source, outside, "40123", label])
            deadline = time.monotonic() + 10
            while listener.exit_code() is None and time.monotonic() < deadline:
                seen += listener.read(0.5)
            seen += listener.read(0.5)
        finally:
            listener.close()
            student.run(["ip", "addr", "del", f"{mail}/32", "dev", "eth0"], check=False)
    assert f"{own} own".encode() in seen, seen
    assert b"posing-as-mail" not in seen, seen


def test_a_student_runs_the_guide_with_their_own_files_and_nothing_of_the_labs(students: Lab) -> None:
    """Security review, finding 7: a student's run needs no lab secret. Part 1 runs on student01 from the class
    folder alone (``. env``, then the own-server path a reader uses headless) while the lab's own folder (its
    client key, DNS key, CA key, root's known_hosts) is hidden under an empty mount, and every check passes.
    (Without root too: the login test above; this machine's Python lives under /root, which others cannot run.)"""
    reset = mailkit("workshop", "reset", "student01")  # a fresh host, whatever ran before
    assert reset.returncode == 0, reset.stdout + reset.stderr
    top = Path(tempfile.mkdtemp(prefix="mailkit-class-"))
    try:
        assert mailkit("workshop", "notebooks", str(top)).returncode == 0
        folder = top / "student01"
        script = (
            'mount -t tmpfs -o size=1m hidden "$2" && cd "$3" && . ./env && '
            'exec "$1" -m mailkit.cli guide run --host student01 --params params.json --parts 1 --output out'
        )
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
        run = subprocess.run([*argv, sys.executable, str(students.dir), str(folder)],
                             capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
        assert run.returncode == 0 and " 0 failed" in run.stdout, run.stdout[-3000:] + run.stderr[-2000:]
        assert "(student01)" in run.stdout and (folder / "out" / "01-postfix.ipynb").exists()
    finally:
        shutil.rmtree(top, ignore_errors=True)
        mailkit("workshop", "reset", "student01")  # fresh again: the board test counts on untouched students


def test_notebooks_are_written_for_every_student(students: Lab, tmp_path: Path) -> None:
    result = mailkit("workshop", "notebooks", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    for number in range(1, STUDENTS + 1):
        folder = tmp_path / f"student{number:02}"
        assert sorted(p.name for p in folder.glob("*.ipynb")) == [
            "01-postfix.ipynb", "02-dovecot.ipynb", "03-spam-outbound.ipynb", "04-spam-inbound.ipynb"]  # fmt: skip
        cells = json.loads((folder / "01-postfix.ipynb").read_text())["cells"]
        injected = next(c for c in cells if "injected-parameters" in c["metadata"].get("tags", []))
        assert f"TARGET = 'student{number:02}'" in "".join(injected["source"])
        assert (folder / "passwords").stat().st_mode & 0o777 == 0o600 and (folder / "dns.key").exists()
        assert str(students.dir) not in (folder / "env").read_text() + (folder / "ssh" / "config").read_text()
        assert (folder / "ssh" / "id_ed25519").stat().st_mode & 0o777 == 0o600
        assert (
            "IdentityFile " + str((folder / "ssh" / "id_ed25519").resolve()) in (folder / "ssh" / "config").read_text()
        )


def test_reset_to_part_1_then_board_and_check(students: Lab, tmp_path: Path) -> None:
    reset = mailkit("workshop", "reset", "student02", "--to-part", "1", "--output", str(tmp_path / "run"))
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert "student02: at the end of part 1" in reset.stdout and " 0 failed" in reset.stdout
    assert (tmp_path / "run" / "01-postfix.ipynb").exists()
    checked = mailkit("check", "--host", "lab:student02", "--from", "lab:outside", "--json")
    report = json.loads(checked.stdout)
    failed = {f"{r['group']} / {r['name']}" for r in report["rows"] if not r["ok"]}
    assert failed <= {"updates / security updates pending"}, checked.stdout  # see test_80_check.MAY_BE_RED
    assert {r["part"] for r in report["rows"]} == {0, 1}, "a server at the end of part 1 is checked for part 1"
    assert "dns / MX of b.student02.example.org" in {f"{r['group']} / {r['name']}" for r in report["rows"]}
    board = tmp_path / "board.html"
    written = mailkit("workshop", "board", "--output", str(board))
    assert written.returncode == 0 and "3 students" in written.stdout, written.stdout + written.stderr
    page = board.read_text()
    assert 'student01</th><td colspan="5" class="none">not started' in page
    assert 'student03</th><td colspan="5" class="none">not started' in page
    row = page.split('<a href="#student02">student02</a></th>')[1].split("</tr>")[0]
    assert row.startswith('<td class="ok"'), row  # part 1 all green
    assert row.count('class="none"') == 3, row  # parts 2-4 not checked; the last cell is the server (updates)


def test_a_reset_from_the_students_own_snapshot_passes_the_same_checks_with_their_records(
    students: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22: a student reset to part K twice boots the second time from the snapshot the first kept, with the
    same `mailkit check` rows as the host the guide built, and the records their run had published (here one TXT
    record, as part 3's DKIM, SPF and DMARC would be); what they published after it is gone."""
    from mailkit.classroom.workshop import reset_student
    from mailkit.lab import snapshots
    from mailkit.status.run import check_server

    name, domain = "student03", student_spec(3).domain
    for old in snapshots.listing(students.snapshot_store):  # whatever an earlier run of this lab left for them
        if old.host == name:
            shutil.rmtree(old.path)
    keep = Lab.keep_snapshot

    def published_then_kept(lab: Lab, part: int, progress: object = None, name: str = "mail") -> object:
        lab.set_dns_records(f"_run.{domain}", "TXT", ['"published by the run"'])
        return keep(lab, part, name=name)

    monkeypatch.setattr(Lab, "keep_snapshot", published_then_kept)
    try:
        built = reset_student(name, 1, tmp_path / "built")
        assert built.run is not None and built.ok and built.booted_from is None and built.kept, built
        monkeypatch.undo()

        def seen() -> list[tuple[str, str, bool]]:
            return [(r.group, r.name, r.ok) for r in check_server(f"lab:{name}", vantage="lab:outside").rows]

        on_built = seen()
        assert len(on_built) >= 20 and {"drift", "dns"} <= {group for group, _, _ in on_built}, on_built
        students.set_dns_records(f"_later.{domain}", "TXT", ['"published after the snapshot"'])
        started = time.monotonic()
        again = mailkit("workshop", "reset", name, "--to-part", "1")
        took = time.monotonic() - started
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"{name}: at the end of part 1, from snapshot {built.kept}" in again.stdout, again.stdout
        print(f"\nreset to part 1 from the student's snapshot: {took:.1f} s")
        lookup = lookup_at(NAMESERVER.address)
        assert lookup(f"_run.{domain}", "TXT") == ('"published by the run"',)
        assert lookup(f"_later.{domain}", "TXT") == (), "what the student published after the snapshot is gone"
        on_restored = seen()
        assert on_restored == on_built, [(a, b) for a, b in zip(on_built, on_restored, strict=False) if a != b]
    finally:
        mailkit("workshop", "reset", name)  # fresh again: the board test counts on untouched students


def test_reset_gives_a_fresh_host_and_clean_dns(students: Lab) -> None:
    lookup = lookup_at(NAMESERVER.address)
    spec = student_spec(3)
    students.set_dns_records(f"_dmarc.{spec.domain}", "TXT", ['"v=DMARC1; p=none"'])
    result = mailkit("workshop", "reset", "student03")
    assert result.returncode == 0, result.stdout + result.stderr
    assert lookup(f"_dmarc.{spec.domain}", "TXT") == (), "what the student published is gone"
    assert lookup(spec.domain, "MX") == (f"10 {spec.fqdn}.",), "what the provider set is back"


def test_down_leaves_no_student_behind(students: Lab) -> None:
    down = mailkit("workshop", "down")
    assert down.returncode == 0 and f"{STUDENTS} student hosts removed" in down.stdout, down.stdout + down.stderr
    lab = students
    assert not [n for n in lab_namespaces() if "student" in n]
    assert lookup_at(NAMESERVER.address)(student_spec(1).fqdn, "A") == ()
    assert lab.status()["state"] == "up", "the lab itself stays up"
