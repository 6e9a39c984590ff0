"""The lab fixture, shared by the lab tests and the reliability suite: one lab per Debian release for the whole session.

Releases come from ``MAILKIT_TEST_RELEASES`` (default ``trixie,bookworm``). The suite takes over the
lab on this machine: whatever lab was up is taken down first. ``./run tests`` runs one pytest per release side by
side (:mod:`mailkit.matrix.suite`), the second in lab instance 9 inside the namespace ``MAILKIT_NETNS``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from mailkit.lab.lab import Lab, leftovers
from tests.ordering import shuffled_modules

RELEASES = [r for r in os.environ.get("MAILKIT_TEST_RELEASES", "trixie,bookworm").split(",") if r]

if os.environ.get("MAILKIT_NETNS"):
    # One release's half of the suite run side by side (mailkit.matrix.suite): its lab lives in a network namespace
    # of its own; entered first, so every socket and child process of this session is in there with it.
    from mailkit.lab.netns import enter

    enter(os.environ["MAILKIT_NETNS"])


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--shuffle-modules",
        metavar="SEED",
        type=int,
        default=None,
        help="run each release's lab test modules in an order drawn from SEED (none may depend on another's leftovers)",
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    seed = config.getoption("--shuffle-modules")
    if seed is not None:
        items[:] = shuffled_modules(items, seed)


def pytest_report_header(config: pytest.Config) -> str | None:
    seed = config.getoption("--shuffle-modules")
    return None if seed is None else f"lab test modules shuffled with seed {seed}"


def _lab_possible() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root"
    return None


@pytest.fixture(scope="session", params=RELEASES)
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    reason = _lab_possible()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"lab tests cannot run in CI: {reason}")
        pytest.skip(reason)
    the_lab = Lab()
    the_lab.down()
    assert the_lab.up(request.param), "a lab that was just taken down must start"
    yield the_lab
    assert the_lab.down(), "down after up must find something to stop"
    assert leftovers() == [], "lab down left things behind"


@pytest.fixture(scope="module")
def finished(lab: Lab) -> Lab:
    """The mail host with the guide's parts 1-4 applied the lab's way: booted from the part 4 snapshot, which the
    first module to ask builds with the guide (``mailkit lab reset --to-part 4``).

    A module that needs a finished server asks for it, instead of counting on the tests that ran before it.
    """
    lab.reset(to_part=4)
    return lab


#: What a failed lab test shows of the mail host, so that a failure in CI (which keeps no lab) can be read afterwards.
MAIL_HOST_LOGS = (
    # First (CI shows the start of a long section) its own resolver (part 3 section 13), when it has one: whether
    # it answers, whom it still asks, what it said.
    "if [ -x /usr/sbin/unbound-control ]; then echo resolves: $(getent ahosts outside.example.net | head -n 1); "
    "unbound-control dump_infra; journalctl -u unbound --no-pager -n 12 -o short-monotonic; fi; "
    "journalctl -u rspamd -u 'postfix*' -u dovecot --no-pager -n 120 -o short-monotonic; "
    "tail -n 60 /var/log/rspamd/rspamd.log 2>/dev/null; systemctl --no-pager --failed"
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed or "lab" not in getattr(item, "fixturenames", ()):
        return
    try:
        with Lab().connection("mail") as mail:
            seen = mail.run(["sh", "-c", MAIL_HOST_LOGS], check=False, timeout=30)
        report.sections.append(("the mail host's logs", (seen.stdout + seen.stderr)[-40_000:]))
    except Exception as exc:  # the logs are a courtesy: never a second failure
        report.sections.append(("the mail host's logs", f"not read: {exc}"))
