"""Workshop mode's own logic: students' names and addresses, their notebooks' parameters, the board."""

from __future__ import annotations

import ipaddress
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from mailkit.classroom.board import board_html
from mailkit.classroom.workshop import (
    StudentReset,
    inject_parameters,
    reset_students,
    student_number,
    student_parameters,
    student_settings,
    write_student_notebooks,
)
from mailkit.core.errors import LabError, UsageError
from mailkit.guide.guessing import ban_settings
from mailkit.guide.part1 import Part1
from mailkit.lab.layout import BOT_ADDRESS, HOSTS, LISTED_ADDRESS, MAX_STUDENTS, NETWORK_V4, host_spec, student_spec
from mailkit.server.target import Target, resolve_target, target_of
from mailkit.status.rows import Row, StatusReport


def test_every_student_has_own_addresses_names_and_links_clear_of_the_lab() -> None:
    fixed = {a for spec in HOSTS.values() for a in (spec.address, *spec.extra_addresses)}
    fixed |= {LISTED_ADDRESS, BOT_ADDRESS}
    students = [student_spec(n) for n in range(1, MAX_STUDENTS + 1)]
    addresses = [s.address for s in students]
    assert len(set(addresses)) == MAX_STUDENTS and not fixed & set(addresses)
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network(NETWORK_V4) for a in addresses)
    assert len({s.mac for s in students}) == MAX_STUDENTS
    assert all(len(s.switch_link) <= 15 and len(s.netns) <= 40 for s in students)  # Linux's interface name limit
    with pytest.raises(ValueError):
        student_spec(MAX_STUDENTS + 1)


def test_student_names_are_checked() -> None:
    assert host_spec("student61") is None and host_spec("studentxx") is None and host_spec("student1") is None
    assert resolve_target("lab:student07") == "lab:student07"
    with pytest.raises(UsageError):
        resolve_target("lab:student00")
    with pytest.raises(UsageError):
        student_number("outside")


def test_student_parameters_make_a_valid_part1() -> None:
    params = student_parameters(12)
    part1 = Part1(params["DOMAIN"], params["OTHER_DOMAINS"], params["HOSTNAME"], params["MAILBOXES"], params["ALIASES"])
    assert part1.hostname == "mail.student12.example.org"
    assert part1.domains == ("student12.example.org", "b.student12.example.org")
    # bench/workshop.py --resets 4: part 4's fail2ban banned the class room's outside host, whose checks send wrong
    # passwords on purpose, and the checks after it were refused. A student lists it, as a reader lists theirs.
    assert params["NEVER_BAN"] == ["198.51.100.100", "2001:db8:100::100"]
    assert ban_settings(params["NEVER_BAN"], "1h", "10m", 5).never_ban == tuple(params["NEVER_BAN"])


def test_notebooks_get_an_injected_parameters_cell_after_theirs(tmp_path: Path) -> None:
    written = write_student_notebooks(3, tmp_path, (1, 2))
    assert [p.name for p in written] == ["01-postfix.ipynb", "02-dovecot.ipynb"]
    for path in written:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        tags = [c.metadata.get("tags", []) for c in notebook.cells]
        index = tags.index(["parameters"])
        assert tags[index + 1] == ["injected-parameters"]
        source = notebook.cells[index + 1].source
        namespace: dict[str, object] = {}
        exec(source, namespace)  # the cell is plain assignments of literals
        assert namespace["DOMAIN"] == "student03.example.org" and namespace["TARGET"] == "student03"
        assert "PASSWORDS" not in namespace, "only the parameters the notebook has are set"
        assert ("CERT_FILE" in namespace) == (path.name == "02-dovecot.ipynb"), "the notebooks that have it"
    assert namespace["CERT_FILE"] == "/etc/ssl/certs/mail.student03.example.org.pem"


def test_a_students_settings_are_the_own_server_paths_and_name_only_their_folder(tmp_path: Path) -> None:
    """Security review, finding 7: a student's notebooks reach nothing with the lab's keys; they are a reader on
    their own server, with their folder's files (the lab itself is not even asked)."""
    folder = tmp_path / "student03"
    anchor = ". IN DS 4242 13 2 " + "AB" * 32  # the lab's root key, as write_student_kit reads it from the lab
    settings = student_settings(folder, anchor)
    files = ("MAILKIT_SSH_CONFIG", "MAILKIT_CA_FILE", "MAILKIT_PASSWORDS_FILE")
    assert all(Path(settings[name]).is_relative_to(folder) for name in files)
    assert f"--key-file {folder / 'dns.key'}" in settings["MAILKIT_REGISTRAR"]
    target = target_of(student_parameters(3)["TARGET"], env=settings)
    assert type(target) is Target, "the own-server target, not the lab's"
    assert (target.destination, target.outside_name, target.offline) == ("student03", "outside", True)
    assert target.passwords_file == str(folder / "passwords") and target.ca_file == str(folder / "lab-ca.pem")
    assert target.registrar == settings["MAILKIT_REGISTRAR"] and target.receiver(None) is None
    assert target.trust_anchor == anchor, "their checks walk DNSSEC from the lab's root key"


def test_inject_refuses_a_notebook_without_parameters() -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    with pytest.raises(UsageError):
        inject_parameters(notebook, {"DOMAIN": "example.org"})


def test_board_shows_parts_not_started_students_and_fixes() -> None:
    done = StatusReport("lab:student01", "lab:outside", [Row("ports", "25", True, "open", part=1)])
    failing = StatusReport(
        "lab:student02",
        "lab:outside",
        [Row("ports", "25", True, "open", part=1), Row("dns", "MX", False, "none", "publish <MX>", part=1)],
    )
    new = StatusReport("lab:student03", "lab:outside", [Row("services", "postfix installed", False, "no", part=1)])
    page = board_html([done, failing, new], refresh=30)
    assert '<meta http-equiv="refresh" content="30">' in page
    assert '<td class="ok" title="">1/1</td>' in page and '<td class="fail" title="MX">1/2</td>' in page
    assert 'student03</th><td colspan="5" class="none">not started' in page
    assert "student02: 1 to fix" in page and "publish &lt;MX&gt;" in page
    assert "<meta http-equiv" not in board_html([done])


def test_the_board_is_served_on_loopback_and_refreshes(tmp_path: Path) -> None:
    import socket
    import threading
    import time
    import urllib.request

    from mailkit.classroom.board import serve

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    calls: list[int] = []

    def collect() -> list[StatusReport]:
        calls.append(1)
        return [StatusReport("lab:student01", "lab:outside", [Row("ports", "25", True, "open", part=1)])]

    page = tmp_path / "board.html"
    threading.Thread(target=serve, args=(page, collect, port, 10), daemon=True).start()
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/board.html", timeout=2) as answer:
                body = answer.read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert '<meta http-equiv="refresh" content="10">' in body and "student01" in body and calls


def test_the_served_board_is_the_page_only_and_only_for_this_machine(tmp_path: Path) -> None:
    """Security review, finding 2: --serve listed and served the whole folder, to any Host (DNS rebinding)."""
    import http.client
    import http.server
    import threading

    from mailkit.classroom.board import board_handler

    page = tmp_path / "board.html"
    page.write_text("<p>the board</p>")
    (tmp_path / "id_ed25519").write_text("PRIVATE KEY")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), board_handler(page, 0))
    port = server.server_address[1]
    server.RequestHandlerClass = board_handler(page, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:

        def get(path: str, host: str) -> tuple[int, bytes]:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", path, headers={"Host": host})
            answer = connection.getresponse()
            return answer.status, answer.read()

        assert get("/", f"127.0.0.1:{port}") == (200, b"<p>the board</p>")
        assert get("/board.html", f"localhost:{port}") == (200, b"<p>the board</p>")
        assert get("/id_ed25519", f"127.0.0.1:{port}")[0] == 404
        assert get("/../id_ed25519", f"127.0.0.1:{port}")[0] == 404
        assert get("/board.html", "rebound.example.net")[0] == 421
    finally:
        server.shutdown()
        server.server_close()


class _Booting:
    """A lab whose students' hosts take a moment to boot, as from their snapshots: which booted, how many at once."""

    def __init__(self, students: int, fails: str = "") -> None:
        self.students, self.fails = students, fails
        self.booted: list[str] = []
        self.now = self.most = 0
        self.forgot = 0  # how often the receiver was made to forget (restarted: 5 s each)
        self.forgot_alone: list[str] = []  # students whose own boot restarted it
        self.lock = threading.Lock()

    def __call__(self) -> _Booting:  # stands in for the class: Lab() is this lab
        return self

    def hosts(self) -> dict[str, object]:
        return {f"student{n:02d}": object() for n in range(1, self.students + 1)}

    def forget_receiver_cache(self) -> None:
        with self.lock:
            self.forgot += 1

    def boot_part(self, name: str, to_part: int, progress: object, *, forget_receiver: bool = True) -> SimpleNamespace:
        if forget_receiver:
            self.forgot_alone.append(name)
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.2)
        with self.lock:
            self.now -= 1
            self.booted.append(name)
        if name == self.fails:
            raise LabError(f"host {name} did not answer SSH")
        return SimpleNamespace(name=f"trixie-{name}-part{to_part}-abc", part=to_part)


def test_several_students_boot_side_by_side_and_one_failure_is_theirs(monkeypatch: pytest.MonkeyPatch) -> None:
    lab = _Booting(students=4, fails="student03")
    monkeypatch.setattr("mailkit.lab.lab.Lab", lab)
    names = ["student01", "student02", "student03", "student04"]
    done = reset_students(names, 2, Path("/nonexistent"))
    assert sorted(lab.booted) == names and lab.most == 4, "all four at once"
    assert (lab.forgot, lab.forgot_alone) == (1, []), "the receiver restarted once for the class, not per student"
    assert isinstance(done["student03"], LabError) and "did not answer SSH" in str(done["student03"])
    others = [done[n] for n in names if n != "student03"]
    assert [d.booted_from for d in others if isinstance(d, StudentReset)] == [
        f"trixie-{n}-part2-abc" for n in ("student01", "student02", "student04")
    ]
    assert all(isinstance(d, StudentReset) and d.run is None for d in others), "their snapshots were part 2's"


@pytest.mark.parametrize(
    ("names", "part", "refused"),
    [
        (["student01", "student09"], 2, "the lab has no student09"),
        (["student01", "student01"], 2, "name each student once"),
        (["student01", "mail"], 2, "mail"),
        (["student01", "student02"], 7, "--to-part must be from 0 to"),
    ],
)
def test_several_students_are_all_checked_before_any_host_is_touched(
    monkeypatch: pytest.MonkeyPatch, names: list[str], part: int, refused: str
) -> None:
    lab = _Booting(students=2)
    monkeypatch.setattr("mailkit.lab.lab.Lab", lab)
    with pytest.raises(UsageError, match=refused):
        reset_students(names, part, Path("/nonexistent"))
    assert lab.booted == []
