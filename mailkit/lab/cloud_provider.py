"""The cloud provider a reader moves out of, in the lab: an IMAP server shaped like a big mail provider's.

It is Dovecot on the outside host, on an address and name of its own (``imap.cloud.example.net``, 198.51.100.71),
speaking only IMAP over TLS on port 993 (certificate from the lab CA, trusted like a public one), with one account
whose password is an *app password*, as such providers hand out for IMAP. Its folders and messages come from
:mod:`mailkit.lab.cloud_account`: special folders under ``[Cloud]/`` with their RFC 6154 flags in LIST (All Mail is
``\\All``), labels as folders (``/`` between levels), flags kept in the Maildir file names.

The moving-in chapter then treats it as any provider: it knows only the host name, the port, the user and the app
password (:mod:`mailkit.guide.moving_in`).

It also lets *readers* log in: mailboxes of the lab's receiver (``dana@example.net``), whose mail the receiver
stored with its own verdicts, read over IMAP as a reader reads their account at a big provider (``mailkit check
--send-to``). Each account's owner and home come from the passwd-file, so the receiver's Maildirs are read as the
receiver's mail account.

>>> "listen = 198.51.100.71" in cloud_dovecot_conf("2.4")
True
>>> 'mailbox "[Cloud]/All Mail" {' in cloud_dovecot_conf("2.3")
True
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass

from mailkit.core import engine
from mailkit.core.errors import LabError
from mailkit.core.resources import File, Packages
from mailkit.core.ssh import Connection
from mailkit.core.values import EmailAddress, Password
from mailkit.lab.ca import CertificateAuthority
from mailkit.lab.cloud_account import SPECIAL_USE, Account
from mailkit.lab.layout import CLOUD_ADDRESS

HOST = "imap.cloud.example.net"
PORT = 993
#: Where the provider keeps its one account's Maildir, and who owns it.
STORE = "/srv/cloud"
OWNER = "cloudmail"
PASSWD_FILE = "/etc/dovecot/cloud.passwd"


@dataclass(frozen=True)
class CloudAccount:
    """What a reader knows of their account at the provider: where to log in, as whom."""

    host: str
    port: int
    user: str


def cloud_dovecot_conf(major: str) -> str:
    """The provider's whole dovecot.conf for Dovecot ``major`` ("2.3" or "2.4")."""
    folders = "\n".join(
        f'  mailbox "{name}" {{\n    special_use = {flag}\n    auto = subscribe\n  }}'
        for name, flag in SPECIAL_USE.items()
    )
    if major == "2.3":
        core = f"""mail_location = maildir:~/Maildir:LAYOUT=fs
passdb {{
  driver = passwd-file
  args = scheme=SHA512-CRYPT {PASSWD_FILE}
}}
userdb {{
  driver = passwd-file
  args = {PASSWD_FILE}
}}
disable_plaintext_auth = yes
ssl_cert = </etc/ssl/certs/{HOST}.pem
ssl_key = </etc/ssl/private/{HOST}.key"""
    else:
        core = f"""mail_driver = maildir
mail_path = ~/Maildir
mailbox_list_layout = fs
passdb passwd-file {{
  passwd_file_path = {PASSWD_FILE}
  default_password_scheme = SHA512-CRYPT
}}
userdb passwd-file {{
  passwd_file_path = {PASSWD_FILE}
}}
auth_allow_cleartext = no
ssl_server_cert_file = /etc/ssl/certs/{HOST}.pem
ssl_server_key_file = /etc/ssl/private/{HOST}.key"""
    # Dovecot 2.4 wants its version settings first of all.
    versions = "" if major == "2.3" else "dovecot_config_version = 2.4.0\ndovecot_storage_version = 2.4.0\n"
    return f"""{versions}# The lab's cloud provider (mailkit/lab/cloud_provider.py): IMAP over TLS only, one account.
protocols = imap
listen = {CLOUD_ADDRESS}
{core}
ssl = required
ssl_min_protocol = TLSv1.2
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {PORT}
  }}
}}
namespace inbox {{
  inbox = yes
  separator = /
{folders}
}}
"""


def maildir_tar(account: Account, top: str = "Maildir") -> bytes:
    """The account's Maildir as a tar archive (directories, and files with their arrival times), under ``top``."""
    from mailkit.lab.cloud_account import maildir_files

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, (content, mtime) in sorted(maildir_files(account).items()):
            info = tarfile.TarInfo(f"{top}/{path}".rstrip("/"))
            if path.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, 0o700
            else:
                info.size, info.mode, info.mtime = len(content), 0o600, mtime
            tar.addfile(info, io.BytesIO(content) if not path.endswith("/") else None)
    return buffer.getvalue()


def home_of(user: str) -> str:
    local, domain = user.split("@", 1)
    return f"{STORE}/{domain}/{local}"


def _passwd_line(outside: Connection, user: str, password: Password, owner: str, home: str) -> str:
    """``user:{SHA512-CRYPT}hash:uid:gid::home::`` for Dovecot's passwd-file (passdb and userdb alike); the hash is
    made on the outside host, the password handed over on standard input."""
    hashed = outside.run(["openssl", "passwd", "-6", "-stdin"], input=password.reveal() + "\n").stdout.strip()
    ids = outside.run(["sh", "-c", 'echo "$(id -u -- "$1"):$(id -g -- "$1")"', "sh", owner]).stdout.strip()
    return f"{EmailAddress(user)}:{{SHA512-CRYPT}}{hashed}:{ids}::{home}::\n"


def setup(
    outside: Connection,
    ca: CertificateAuthority,
    account: Account,
    password: Password,
    readers: Mapping[str, tuple[Password, str]] | None = None,
) -> CloudAccount:
    """The provider on the outside host with ``account`` as it is today (its mail replaced with the account's);
    ``readers``: other accounts that may log in, each with its password and the Maildir it reads (the receiver's)."""
    chain, key = ca.certificate(HOST)
    engine.apply(
        outside,
        [
            Packages(("dovecot-imapd",)),
            File(f"/etc/ssl/certs/{HOST}.pem", chain, summary=f"certificate for {HOST}"),
            File(f"/etc/ssl/private/{HOST}.key", key, mode=0o600, secret=True),
        ],
    )
    major = outside.run(["dovecot", "--version"]).stdout.strip()[:3]
    if major not in ("2.3", "2.4"):
        raise LabError(f"the cloud provider knows Dovecot 2.3 and 2.4, not {major!r}")
    home = home_of(account.user)
    outside.run(["sh", "-c", f"id {OWNER} >/dev/null 2>&1 || useradd --system --home-dir {STORE} "
                 f"--shell /usr/sbin/nologin {OWNER}"])  # fmt: skip
    lines = [_passwd_line(outside, account.user, password, OWNER, home)]
    for user, (reader_password, maildir) in sorted((readers or {}).items()):
        reader_home = f"{STORE}/readers/{EmailAddress(user)}"
        # The home's Maildir is the receiver's: the global mail location (~/Maildir) serves both kinds of account.
        outside.run(["sh", "-c", 'mkdir -p -- "$1" && ln -sfn -- "$2" "$1/Maildir"', "sh", reader_home, maildir])
        owner = outside.run(["stat", "-c", "%U", "--", maildir]).stdout.strip()
        lines.append(_passwd_line(outside, user, reader_password, owner, reader_home))
    write = f"umask 077 && cat > {PASSWD_FILE} && chown root:dovecot {PASSWD_FILE} && chmod 0640 {PASSWD_FILE}"
    outside.run(["sh", "-c", write], input="".join(lines))
    outside.run(
        [
            "sh",
            "-c",
            'rm -rf -- "$1" && mkdir -p -- "$1" && tar -x -C "$1" && chown -R "$2:$2" -- "$1"',
            "sh",
            home,
            OWNER,
        ],
        input=maildir_tar(account),
        timeout=600,
    )
    engine.apply(outside, [File("/etc/dovecot/dovecot.conf", cloud_dovecot_conf(major).encode())])
    outside.run(["systemctl", "restart", "dovecot"])
    return CloudAccount(HOST, PORT, account.user)


def deliver(outside: Connection, user: str, message: bytes) -> None:
    """A message arriving at the provider (into INBOX and All Mail, as the provider files new mail)."""
    for folder in ("INBOX", next(name for name, flag in SPECIAL_USE.items() if flag == "\\All")):
        outside.run(["doveadm", "save", "-u", user, "-m", folder], input=message)
