"""The ``mailkit`` command line: the lab and a connection check, with one-line errors.

>>> from click.testing import CliRunner
>>> CliRunner().invoke(main, ["lab", "up", "--release", "hamm"]).exit_code
2
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mailkit.core.errors import MailkitError, UsageError
from mailkit.guide.chapters import DEFAULT_PARTS

if TYPE_CHECKING:
    from mailkit.classroom.workshop import StudentReset
    from mailkit.core.resources import Resource
    from mailkit.core.ssh import Connection
    from mailkit.core.values import Password
    from mailkit.status.rows import StatusReport

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(func: F) -> F:
    """Turn mailkit's exceptions into one error line: exit 2 for a wrong request, 1 for a failure."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UsageError as exc:
            click.echo(f"mailkit: error: {exc}", err=True)
            sys.exit(2)
        except MailkitError as exc:
            click.echo(f"mailkit: error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _progress(console: Any = None) -> Callable[[str], None]:
    """Progress lines, dimmed, on stderr. A line is text, never markup: apt and debootstrap print '[/x]' too.

    >>> from rich.console import Console
    >>> show = _progress(Console(file=__import__("io").StringIO(), no_color=True))
    >>> show("Get:1 [/etc] [dim] [/dim] [bold")
    """
    from rich.console import Console
    from rich.text import Text

    console = console or Console(stderr=True)

    def show(line: str) -> None:
        console.print(Text(line, style="dim"), highlight=False, soft_wrap=True)

    return show


def _part_numbers(parts: str) -> list[int]:
    """``--parts 1,2`` as numbers, or a usage error naming the option."""
    try:
        numbers = [int(p) for p in parts.split(",") if p.strip()]
    except ValueError:
        raise UsageError(f"--parts: {parts!r} is not a list of part numbers like 1,2") from None
    if not numbers:
        raise UsageError("--parts: name at least one part, like 1,2")
    return numbers


@click.group()
@click.version_option(package_name="mailkit")
def main() -> None:
    """mailkit: the self-hosted mail server guide, executable."""


@main.command()
@click.argument("message", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@friendly_errors
def headers(message: Path) -> None:
    """Explain a received MESSAGE's trace and authentication headers in plain words (a file, e.g. from a Maildir)."""
    from mailkit.clients.headers import explain

    click.echo(str(explain(message.read_bytes())))


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--ours", multiple=True, help="Your server's address (repeat it): other sources are marked OTHER.")
@friendly_errors
def reports(paths: tuple[Path, ...], ours: tuple[str, ...]) -> None:
    """Read DMARC aggregate and TLS-RPT reports: saved messages, report files (.xml, .gz, .zip, .json) or Maildirs.

    Prints every source that sent mail as your domains (failures first, yours or OTHER) and each TLS-RPT
    policy's sessions. Nothing is sent anywhere: the reports are read here, with the standard library.
    """
    import ipaddress

    from mailkit.domain.reports import DmarcReport, reports_at, source_table, sources, tls_lines

    for address in ours:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise UsageError(f"--ours {address[:60]!r} is not an IP address") from None
    found, refused = reports_at(paths)
    dmarc = [r for r in found if isinstance(r, DmarcReport)]
    click.echo(f"{len(dmarc)} DMARC report(s), {len(found) - len(dmarc)} TLS-RPT report(s), {len(refused)} refused")
    click.echo(source_table(sources(found, ours)))
    for line in tls_lines(found):
        click.echo(line)
    for line in refused:
        click.echo(f"refused: {line}", err=True)


@main.group()
def lab() -> None:
    """The disposable Debian lab: mail, outside and dns hosts on 198.51.100.0/24."""


@lab.command()
@click.option("--release", default=None, help="Debian release (default: trixie, the current stable).")
@click.option("--provider", is_flag=True, help="Also play a hosting provider's internet (see the README).")
@friendly_errors
def up(release: str | None, provider: bool) -> None:
    """Build (once) and boot the lab hosts; a no-op when the lab is already up."""
    from mailkit.lab.lab import Lab
    from mailkit.lab.layout import DEFAULT_RELEASE

    chosen = release or os.environ.get("MAILKIT_RELEASE") or DEFAULT_RELEASE
    the_lab = Lab()
    started = the_lab.up(chosen, progress=_progress())
    click.echo(f"lab {'up' if started else 'already up'}: {chosen}")
    for name, host in the_lab.status()["hosts"].items():
        click.echo(f"  {name:8} {host['hostname']:22} {host['address']}")
    if provider:
        from mailkit.lab import provider as provider_mode

        the_lab.provider_up(progress=_progress())
        env = provider_mode.folder(the_lab) / "env"
        click.echo(f"provider mode: the mail host is '{provider_mode.ALIAS}' (user {provider_mode.ADMIN}, sudo)")
        click.echo(f"  . {env}    # MAILKIT_SSH_CONFIG, MAILKIT_OUTSIDE, MAILKIT_NAMESERVER, MAILKIT_REGISTRAR...")
        click.echo(
            f"  mailkit guide run --host {provider_mode.ALIAS} --params {env.parent / 'params.json'} "
            f"--passwords {env.parent / 'passwords'}"
        )


@lab.command()
@friendly_errors
def registrar() -> None:
    """Play your DNS provider in provider mode: publish the zone text read on standard input."""
    from mailkit.lab import provider as provider_mode
    from mailkit.lab.lab import Lab

    text = sys.stdin.read(256 * 1024)
    for record in provider_mode.registrar(Lab(), text):
        click.echo(
            f"published {record.rtype} {record.name}" if record.values else f"deleted {record.rtype} {record.name}"
        )


@lab.command(name="block-port-25")
@click.option("--host", default="mail", show_default=True, help="The lab host whose outgoing port 25 is blocked.")
@click.option("--lift", is_flag=True, help="Lift the block.")
@friendly_errors
def block_port_25(host: str, lift: bool) -> None:
    """Play a provider that blocks outgoing port 25 (many do on new accounts); --lift ends it."""
    from mailkit.lab import network
    from mailkit.lab.lab import Lab
    from mailkit.lab.layout import host_spec

    spec = host_spec(host)
    if spec is None:
        raise UsageError(f"no lab host {host!r}")
    Lab().require_up()
    if lift:
        network.unblock_outbound(spec)
    else:
        network.block_outbound(spec)
    click.echo(f"outgoing port 25 of {spec.fqdn}: {'blocked' if network.outbound_blocked(spec) else 'open'}")


@lab.command()
@friendly_errors
def down() -> None:
    """Stop every lab host and remove what the lab made; a no-op when it is down."""
    from mailkit.lab.lab import Lab

    click.echo("lab down" if Lab().down() else "lab already down")


@lab.command()
@click.option(
    "--to-part",
    type=click.IntRange(0, 4),
    default=0,
    show_default=True,
    help="Boot the mail host at the end of part K: from its snapshot, or built by the guide now and kept.",
)
@friendly_errors
def reset(to_part: int) -> None:
    """Replace the mail host with a fresh one (same name, addresses and host key), or one at the end of part K."""
    from mailkit.lab.lab import Lab

    done = Lab().reset(progress=_progress(), to_part=to_part)
    click.echo(f"mail host reset: {done}")


@lab.command()
@click.option("--clear", is_flag=True, help="Remove every snapshot not in use (the next reset builds again).")
@friendly_errors
def snapshots(clear: bool) -> None:
    """The kept part snapshots (the mail host's and students'), and whether the lab's current inputs would use each."""
    from mailkit.lab.lab import Lab

    for line in Lab().snapshot_report(clear):
        click.echo(line)


@lab.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly_errors
def status(as_json: bool) -> None:
    """Whether the lab is up, its release and its hosts."""
    from mailkit.lab.lab import Lab

    info = Lab().status()
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True))
        return
    click.echo(f"lab {info['state']}" + (f": {info['release']}" if info["release"] else ""))
    for name, host in info["hosts"].items():
        state = "running" if host["running"] else "stopped"
        click.echo(f"  {name:8} {host['hostname']:22} {host['address']:16} {state}")


@lab.command(name="exec", context_settings={"ignore_unknown_options": True})
@click.argument("host")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@friendly_errors
def exec_(host: str, command: tuple[str, ...]) -> None:
    """Run COMMAND on a lab host over SSH; its exit code is passed through.

    Example: mailkit lab exec mail -- postconf -n
    """
    from mailkit.lab.lab_target import lab_connection

    with lab_connection(host) as conn:
        result = conn.run(list(command), check=False)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    sys.exit(result.exited)


@lab.command()
@click.argument("host")
@friendly_errors
def ssh(host: str) -> None:
    """An interactive shell on a lab host (OpenSSH, with the lab's key and known_hosts)."""
    from mailkit.lab.lab import Lab
    from mailkit.lab.layout import HOSTS

    if host not in HOSTS:
        raise UsageError(f"no lab host {host!r}: choose one of {', '.join(HOSTS)}")
    the_lab = Lab()
    the_lab.require_up()
    os.execvp("ssh", ["ssh", "-F", str(the_lab.ssh_config), host])


@lab.command()
@friendly_errors
def check() -> None:
    """Connect to every lab host and print what it runs (release, systemd state, resolver answers)."""
    from mailkit.core.checks import render_text
    from mailkit.lab.selfcheck import check_lab

    results = check_lab()
    click.echo(render_text(results))
    if not all(r.ok for r in results):
        sys.exit(1)


@main.group()
def mailbox() -> None:
    """Add, remove and list mailboxes; set passwords (lab mail host by default, or --host)."""


_HOST = click.option("--host", default=None, help="SSH destination (default: MAILKIT_HOST, else lab:mail).")


def _read_password(from_stdin: bool) -> Password:
    from mailkit.core.values import Password

    if from_stdin:
        return Password(sys.stdin.readline().rstrip("\n"))
    first = click.prompt("password", hide_input=True)
    if click.prompt("again", hide_input=True) != first:
        raise UsageError("the two passwords differ")
    return Password(first)


def _apply_mailbox_change(host: str | None, build: Callable[[Connection], list[Resource]]) -> None:
    from mailkit.core import engine
    from mailkit.server.target import connect

    with connect(host) as conn:
        result = engine.apply(conn, build(conn))
    click.echo(str(result))


def _change_with_password(
    address: str,
    password_stdin: bool,
    host: str | None,
    change: Callable[[Connection, str, Password], list[Resource]],
) -> None:
    """Validate the address before asking for a password, then apply ``change`` on the host."""
    from mailkit.core.values import EmailAddress

    EmailAddress(address, field="address")
    password = _read_password(password_stdin)
    _apply_mailbox_change(host, lambda conn: change(conn, address, password))


@mailbox.command(name="add")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@_HOST
@friendly_errors
def mailbox_add(address: str, password_stdin: bool, host: str | None) -> None:
    """Add ADDRESS (its mail map, password and sender login); an existing ADDRESS is refused."""
    from mailkit.server import mailboxes

    _change_with_password(address, password_stdin, host, mailboxes.add_mailbox)


@mailbox.command(name="remove")
@click.argument("address")
@_HOST
@friendly_errors
def mailbox_remove(address: str, host: str | None) -> None:
    """Remove ADDRESS from the three files (its Maildir is kept)."""
    from mailkit.server import mailboxes

    _apply_mailbox_change(host, lambda conn: mailboxes.remove_mailbox(address))


@mailbox.command(name="passwd")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@_HOST
@friendly_errors
def mailbox_passwd(address: str, password_stdin: bool, host: str | None) -> None:
    """Set a new password for ADDRESS."""
    from mailkit.server import mailboxes

    _change_with_password(address, password_stdin, host, mailboxes.set_password)


@mailbox.command(name="list")
@_HOST
@friendly_errors
def mailbox_list(host: str | None) -> None:
    """Every mailbox, and whether the mail map, passwd-file and sender logins agree."""
    from mailkit.core.checks import render_text
    from mailkit.server import mailboxes
    from mailkit.server.target import connect

    with connect(host) as conn:
        files = mailboxes.MailboxFiles.read(conn)
    for address in sorted(files.mailboxes):
        password = "password" if address in files.hashes else "NO PASSWORD"
        click.echo(f"{address:40} {files.mailboxes[address]:30} {password}")
    checks = mailboxes.check_consistency(files)
    click.echo(render_text(checks))
    if not all(c.ok for c in checks):
        sys.exit(1)


@main.group()
def guide() -> None:
    """The guide's notebooks, executed headless."""


def _file_option(flag: str, name: str, text: str) -> Callable[[F], F]:
    """An option naming a file on this machine (not checked here: the command says what is wrong with it)."""
    return click.option(flag, name, type=click.Path(dir_okay=False, path_type=Path), default=None, help=text)


@guide.command(name="book")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out/book"),
    show_default=True,
    help="Where the book's pages are written.",
)
@friendly_errors
def guide_book(output: Path) -> None:
    """Build the guide as a static website from the stored notebooks; exit 1 if a link inside it is broken."""
    from mailkit.guide import book

    pages = book.build(output)
    broken = book.broken_links(output)
    size = sum(p.stat().st_size for p in output.iterdir() if p.is_file())
    click.echo(f"{len(pages)} pages ({size // 1024} KB) in {output}; open {output / 'index.html'}")
    if broken:
        click.echo("broken links:\n  " + "\n  ".join(broken), err=True)
        raise SystemExit(1)


@guide.command(name="run")
@click.option("--release", default=None, help="Debian release of the lab (default: trixie).")
@click.option("--parts", default=DEFAULT_PARTS, show_default=True, help="Comma-separated parts to run, in order.")
@click.option("--keep", is_flag=True, help="Run on the mail host as it is, instead of a fresh one.")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out"),
    show_default=True,
    help="Where the executed notebooks are saved.",
)
@click.option("--host", default=None, help="Your own server (an SSH destination or alias), instead of the lab.")
@_file_option("--params", "params_file", "With --host: the notebooks' parameters (DOMAIN, MAILBOXES...), JSON or YAML.")
@_file_option("--passwords", "passwords_file", "With --host: 'address password' lines, mode 0600 (default: asked).")
@click.option("--outside", default=None, help="With --host: the host the outside checks run from (SSH).")
@click.option(
    "--demos/--no-demos",
    default=None,
    help="Run the lab's optional demos (part 4's greylisting: about 10 s of real waiting; default: as MAILKIT_DEMOS "
    "says, else yes); your own server never does.",
)
@friendly_errors
def guide_run(
    release: str | None,
    parts: str,
    keep: bool,
    output: Path,
    host: str | None,
    params_file: Path | None,
    passwords_file: Path | None,
    outside: str | None,
    demos: bool | None,
) -> None:
    """Execute the guide against the lab (or your server, with --host), print its checks; exit 1 if any fails."""
    from mailkit.core.checks import render_text
    from mailkit.guide.runner import notebooks_for, run_guide

    numbers = _part_numbers(parts)
    notebooks_for(numbers)  # an unknown part is an error before anything touches a host
    progress = _progress()
    if host is None:
        if params_file or passwords_file or outside:
            raise UsageError("--params, --passwords and --outside go with --host (your own server)")
        from mailkit.lab.lab import check_release, prepare_lab
        from mailkit.lab.layout import DEFAULT_RELEASE

        chosen = check_release(release or os.environ.get("MAILKIT_RELEASE") or DEFAULT_RELEASE)
        from mailkit.server.target import DEMOS_ENV

        prepare_lab(chosen, keep, progress, after_part=min(numbers) - 1)  # 5, the upgrade, starts after 4
        environ = {} if demos is None else {DEMOS_ENV: "yes" if demos else "no"}
        run = run_guide(numbers, output, progress=progress, environ=environ)
        where = f"Debian {chosen}"
    else:
        if release or keep:
            raise UsageError("--release and --keep are for the lab: your own server runs its own release, as it is")
        from mailkit.guide.ownserver import prepare_own_server

        with prepare_own_server(host, params_file, passwords_file, outside, progress) as (target, params, environ):
            run = run_guide(numbers, output, target=target, progress=progress, parameters=params, environ=environ)
        where = host
    click.echo(render_text(run.checks) if run.checks else "no checks ran")
    for name, seconds in run.seconds.items():
        click.echo(f"{name}: {seconds:.0f} s, saved to {output / name}")
    if run.error:
        click.echo(f"mailkit: error: {run.error}", err=True)
    failed = sum(not c.ok for c in run.checks)
    skipped = sum(c.skipped for c in run.checks)
    click.echo(f"{len(run.checks) - failed - skipped} passed, {failed} failed, {skipped} skipped ({where})")
    sys.exit(0 if run.ok else 1)


@main.command()
@click.option("--releases", default="bookworm,trixie,sid", show_default=True, help="Comma-separated Debian releases.")
@click.option("--parts", default=DEFAULT_PARTS, show_default=True, help="Comma-separated parts of the guide.")
@click.option("--jobs", type=click.IntRange(1, 9), default=None, help="Labs at a time (default: all of them).")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out/matrix"),
    show_default=True,
    help="Where the report (report.html, report.md, report.json) and each release's notebooks go.",
)
@click.option(
    "--baseline",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="An earlier report.json: list new failures and changed values.",
)
@friendly_errors
def matrix(releases: str, parts: str, jobs: int | None, output: Path, baseline: Path | None) -> None:
    """Run the guide on several Debian releases at once, side by side; exit 1 on any failed check."""
    from mailkit.matrix.releases import run_matrix

    numbers = _part_numbers(parts)
    chosen = [r.strip() for r in releases.split(",") if r.strip()]
    report = run_matrix(chosen, numbers, output, jobs=jobs, baseline=baseline, progress=_progress())
    for release, summary in report["summary"].items():
        error = f", error: {summary['error'].splitlines()[0]}" if summary["error"] else ""
        click.echo(f"{release}: {summary['passed']} passed, {summary['failed']} failed{error}")
    for title, items in report.get("baseline", {}).items():
        click.echo(f"{title.replace('_', ' ')}: {len(items)}")
    click.echo(f"report: {output / 'report.html'} ({report['wall_seconds']:.0f} s)")
    sys.exit(0 if report["ok"] else 1)


@main.group(name="registrar")
def registrar_group() -> None:
    """Publish zone text (as the guide hands it to MAILKIT_REGISTRAR) at a DNS server that takes updates."""


@registrar_group.command(name="rfc2136")
@click.option("--server", required=True, help="The primary DNS server's address (it takes RFC 2136 updates).")
@click.option(
    "--key-file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The TSIG key, as tsig-keygen writes it (mode 0600).",
)
@friendly_errors
def rfc2136(server: str, key_file: Path) -> None:
    """Replace the record sets of the zone text on standard input by signed dynamic updates (RFC 2136).

    For MAILKIT_REGISTRAR: 'mailkit registrar rfc2136 --server 192.0.2.53 --key-file ~/dns.key'.
    """
    import ipaddress

    from mailkit.domain.registrar import MAX_ZONE_TEXT, parse_zone_text, publish_rfc2136, read_tsig_key

    try:
        address = str(ipaddress.ip_address(server))
    except ValueError:
        raise UsageError(f"--server {server[:60]!r} is not an IP address") from None
    key = read_tsig_key(key_file)
    records = parse_zone_text(sys.stdin.read(MAX_ZONE_TEXT + 1))
    zones = publish_rfc2136(records, address, key)
    for record in records:
        click.echo(f"{'published' if record.values else 'deleted'} {record.rtype} {record.name}")
    click.echo(f"zones updated at {address}: {', '.join(zones) or 'none'}")


@main.command(name="check")
@click.option("--host", default=None, help="The server: an SSH destination or lab:NAME (default: lab:mail).")
@click.option("--domain", "domains", multiple=True, help="A mail domain to check (default: the server's own list).")
@click.option("--from", "vantage", default=None, help="Probe from this host (SSH destination or lab:NAME), not here.")
@click.option(
    "--nameserver",
    default=None,
    help="Resolver to ask (default: the lab DNS for lab hosts, else the system's).",
)
@click.option(
    "--blocklist", "blocklists", multiple=True, help="A DNS block list zone (repeat it; default: ZEN, SpamCop)."
)
@click.option(
    "--domain-blocklist",
    "domain_blocklists",
    multiple=True,
    help="A domain block list zone the mail domains are looked up on (repeat it; default: Spamhaus DBL).",
)
@click.option(
    "--parked-domain",
    "parked_domains",
    multiple=True,
    help="A domain of yours that sends and takes no mail: null MX, SPF -all, DMARC p=reject (repeat it).",
)
@click.option("--parts", default=None, help="The guide's parts applied on the server (default: read from the server).")
@click.option("--ca-file", default=None, help="Trust this CA for the server's certificate (a private CA).")
@click.option("--json", "as_json", is_flag=True, help="JSON, for machines (and the workshop board).")
@click.option("--markdown", is_flag=True, help="Markdown, for a ticket or a pull request.")
@click.option("--changes", is_flag=True, help="Also say what changed since the previous run (kept in ~/.local/state).")
@click.option(
    "--send-to",
    default=None,
    help="Opt-in, the only row that sends anything: one message from the server's postmaster to this address of "
    "yours at another provider, read back there (--read-at) to see that provider's SPF, DKIM and DMARC verdicts.",
)
@click.option("--read-at", default=None, help="The IMAP server (IMAPS, 993) of the --send-to address's provider.")
@click.option(
    "--read-as",
    default=None,
    help="The login there (default: the --send-to address); its password from the passwords file, or asked for.",
)
@friendly_errors
def check_command(
    host: str | None,
    domains: tuple[str, ...],
    vantage: str | None,
    nameserver: str | None,
    blocklists: tuple[str, ...],
    domain_blocklists: tuple[str, ...],
    parked_domains: tuple[str, ...],
    parts: str | None,
    ca_file: str | None,
    as_json: bool,
    markdown: bool,
    changes: bool,
    send_to: str | None,
    read_at: str | None,
    read_as: str | None,
) -> None:
    """The status of a live mail server, from inside and outside; exit 1 if a row fails. Changes nothing on it
    (with --send-to, it sends that one message)."""
    from mailkit.core.values import Domain
    from mailkit.server.target import resolve_target
    from mailkit.status.run import check_server, record_changes, state_file

    if as_json and markdown:
        raise UsageError("choose one of --json and --markdown")
    for site in blocklists:
        Domain(site.split("*")[0].split("=")[0], field="--blocklist")
    for zone in domain_blocklists:
        Domain(zone, field="--domain-blocklist")
    for parked in parked_domains:
        Domain(parked, field="--parked-domain")
    if nameserver is not None:
        import ipaddress

        try:
            ipaddress.ip_address(nameserver)
        except ValueError:
            raise UsageError(f"--nameserver {nameserver!r} is not an IP address") from None
    target = resolve_target(host)
    report = check_server(
        target,
        domains=domains,
        vantage=vantage,
        nameserver=nameserver,
        blocklists=blocklists or None,
        domain_blocklists=domain_blocklists or None,
        parked_domains=parked_domains,
        parts=_part_numbers(parts) if parts else None,
        ca_file=ca_file,
        send_to=send_to,
        read_at=read_at,
        read_as=read_as,
        progress=_progress(),
    )
    if changes:
        record_changes(report, state_file(target))
    click.echo(report.json() if as_json else report.markdown() if markdown else report.text())
    sys.exit(0 if report.ok else 1)


@main.group()
def workshop() -> None:
    """A class on one machine: a mail host per student, their notebooks, resets and a board."""


@workshop.command(name="up")
@click.option("--students", type=click.IntRange(1, 60), required=True, help="How many students (1-60).")
@click.option("--release", default=None, help="Debian release of the lab (default: trixie).")
@friendly_errors
def workshop_up(students: int, release: str | None) -> None:
    """Bring the lab up (if it is not) with a mail host per student: studentNN.example.org on 198.51.100.(110+N)."""
    from mailkit.lab.lab import Lab, check_release
    from mailkit.lab.layout import DEFAULT_RELEASE, student_spec

    lab = Lab()
    chosen = check_release(release or os.environ.get("MAILKIT_RELEASE") or DEFAULT_RELEASE)
    progress = _progress()
    lab.up(chosen, progress)
    new = lab.add_students(students, progress)
    for number in range(1, students + 1):
        spec = student_spec(number)
        login = lab.student_key(spec.name).parent / "ssh_config"
        click.echo(f"{spec.name}  {spec.domain:24} {spec.address:16} ssh -F {login} {spec.name}")
    click.echo(f"{len(new)} new, {students} students in all")


@workshop.command(name="down")
@friendly_errors
def workshop_down() -> None:
    """Remove every student host (the lab itself stays up)."""
    from mailkit.lab.lab import Lab

    click.echo(f"{Lab().remove_students()} student hosts removed")


@workshop.command(name="notebooks")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@friendly_errors
def workshop_notebooks(directory: Path) -> None:
    """Write each student's notebooks, parameters filled in, and SSH login into DIRECTORY/studentNN/."""
    from mailkit.classroom.workshop import students_in_lab, write_class

    written = write_class(directory, students_in_lab())
    for name, paths in written.items():
        click.echo(f"{name}: {len(paths)} notebooks in {directory / name}")


@workshop.command(name="reset")
@click.argument("students", nargs=-1, required=True)
@click.option(
    "--to-part",
    type=int,
    default=0,
    show_default=True,
    help="End of part K: from the student's own snapshot, or parts 1..K applied now and kept as one.",
)
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the executed notebooks go (default: out/workshop/STUDENT; for several, OUTPUT/STUDENT).",
)
@friendly_errors
def workshop_reset(students: tuple[str, ...], to_part: int, output: Path | None) -> None:
    """Give each STUDENT a fresh mail host, then bring it to the end of part K (their own parameters): the first
    time by the guide, kept as their snapshot; after that, from it in seconds. Several students' hosts boot side by
    side (the guide, where it must run, runs for one after the other)."""
    from mailkit.classroom.workshop import reset_student, reset_students

    if len(students) == 1:
        student = students[0]
        done = reset_student(student, to_part, output or Path("out/workshop") / student, _progress())
        sys.exit(0 if _said_reset(student, to_part, done) else 1)
    results = reset_students(list(students), to_part, output or Path("out/workshop"), _progress())
    ok = True
    for student, result in results.items():
        if isinstance(result, MailkitError):
            click.echo(f"mailkit: error: {student}: {result}", err=True)
            ok = False
        else:
            ok = _said_reset(student, to_part, result) and ok
    sys.exit(0 if ok else 1)


def _said_reset(student: str, to_part: int, done: StudentReset) -> bool:
    """What one student's reset did, in a line (and the checks that failed); whether it went well."""
    from mailkit.core.checks import render_text

    run = done.run
    if run is None:
        if done.booted_from is None:
            click.echo(f"{student}: a fresh server, nothing applied")
        else:
            click.echo(f"{student}: at the end of part {to_part}, from snapshot {done.booted_from}")
        return True
    failed = sum(not c.ok for c in run.checks)
    if run.error or failed:
        click.echo(render_text([c for c in run.checks if not c.ok]))
        click.echo(f"mailkit: error: {student}: {run.error or 'checks failed'}", err=True)
    on = "" if done.booted_from is None else f" on snapshot {done.booted_from}"
    kept = "" if done.kept is None else f", kept as snapshot {done.kept}"
    click.echo(
        f"{student}: at the end of part {to_part}{on}, {len(run.checks) - failed} checks passed, {failed} failed{kept}"
    )
    return run.ok


@workshop.command(name="board")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("out/workshop/board.html"),
    show_default=True,
)
@click.option("--serve", "port", type=click.IntRange(1024, 65535), default=None, help="Serve it on 127.0.0.1:PORT.")
@click.option(
    "--interval", type=click.IntRange(10, 3600), default=60, show_default=True, help="Seconds between checks."
)
@click.option(
    "--report",
    "reports",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A 'mailkit check --json' file of a student's own server (repeat it).",
)
@friendly_errors
def workshop_board(output: Path, port: int | None, interval: int, reports: tuple[Path, ...]) -> None:
    """Every student's checks per part on one HTML page (written once, or served and refreshed)."""
    from mailkit.classroom import board
    from mailkit.classroom.workshop import students_in_lab
    from mailkit.lab.layout import student_name

    names = [student_name(n) for n in range(1, students_in_lab() + 1)] if not reports else []

    def collect() -> list[StatusReport]:
        found = board.check_students(names) if names else []
        return found + board.read_reports(reports)

    if port is not None:
        click.echo(f"serving the board on http://127.0.0.1:{port}/{output.name} (Ctrl-C stops)")
        board.serve(output, collect, port, interval)
        return
    written = board.write_board(output, collect)
    green = sum(r.ok for r in written)
    click.echo(f"board: {output} ({len(written)} students, {green} all green)")


if __name__ == "__main__":
    main()
