"""The benchmark's workload as plain data, shared by mailkit's run and the hand-written floor.

10 templated files (1-2 KB), 20 main.cf settings, 2 lookup tables, and two removals (a file and a
main.cf setting that the reset puts back before every first apply).

>>> len(files()), len(SETTINGS), len(tables()), REMOVED_SETTING
(10, 20, 2, 'soft_bounce')
"""

from __future__ import annotations

DIRECTORY = "/etc/mailkit-bench"
OBSOLETE = f"{DIRECTORY}/obsolete.conf"
REMOVED_SETTING = "soft_bounce"
TEMPLATE = """# {{ name }}: rendered by mailkit's benchmark for {{ domain }}
{% for i in range(lines) %}
setting_{{ i }} = value {{ i }} for {{ domain }} ({{ name }})
{% endfor %}
"""
SETTINGS = {
    "myorigin": "$mydomain",
    "mydomain": "example.org",
    "myhostname": "mail.$mydomain",
    "mydestination": "$myhostname, localhost.$mydomain, localhost",
    "inet_interfaces": "all",
    "mynetworks": "127.0.0.0/8 [::1]/128",
    "relayhost": "",
    "mailbox_size_limit": "0",
    "recipient_delimiter": "+",
    "virtual_mailbox_domains": "$mydomain b.$mydomain",
    "virtual_mailbox_base": "/var/vmail",
    "virtual_mailbox_limit": "0",
    "virtual_uid_maps": "static:5000",
    "virtual_gid_maps": "static:5000",
    "virtual_mailbox_maps": "lmdb:/etc/postfix/vmailbox",
    "virtual_alias_maps": "lmdb:/etc/postfix/virtual",
    "smtpd_helo_required": "yes",
    "disable_vrfy_command": "yes",
    "delay_warning_time": "4h",
    "message_size_limit": "52428800",
}


def files() -> dict[str, str]:
    """Path -> content of the templated files, rendered with Jinja2 as the guide renders its own."""
    import jinja2

    template = jinja2.Environment(keep_trailing_newline=True, trim_blocks=True).from_string(TEMPLATE)
    return {
        f"{DIRECTORY}/file{i:02}.conf": template.render(name=f"file{i}", domain="example.org", lines=30 + i * 2)
        for i in range(10)
    }


def tables() -> dict[str, str]:
    """Path -> content of the two lookup tables (turned into lmdb databases by postmap)."""
    return {
        "/etc/postfix/vmailbox": "".join(f"user{i}@example.org example.org/user{i}/\n" for i in range(20)),
        "/etc/postfix/virtual": "".join(f"alias{i}@example.org user{i}@example.org\n" for i in range(20)),
    }
