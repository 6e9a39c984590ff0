"""The lab network: a switch namespace with a bridge, one veth per host, one veth for the machine.

No IP forwarding and no NAT: hosts reach each other over the bridge and the machine's leg
(``GATEWAY_V4``) only, where the apt proxy listens.

>>> first, second = switch_commands()[:2]  # the switch of this lab instance (mailkit-switch, mailkit9-switch...)
>>> first[:3], second[:2], second[2] == first[3] and second[2].endswith("-switch")
(['ip', 'netns', 'add'], ['ip', '-n'], True)
"""

from __future__ import annotations

import time
from pathlib import Path

from mailkit.core.errors import LabError
from mailkit.core.local import run_local
from mailkit.lab.layout import (
    BRIDGE,
    GATEWAY_V4,
    GATEWAY_V6,
    MACHINE_LINK,
    NETWORK_V4,
    NETWORK_V6,
    PREFIX,
    SWITCH_NETNS,
    HostSpec,
)

NETNS_DIR = Path("/run/netns")
_V4_PREFIX = NETWORK_V4.split("/")[1]
_V6_PREFIX = NETWORK_V6.split("/")[1]


def _in(netns: str, *args: str) -> list[str]:
    return ["ip", "-n", netns, *args]


def switch_commands() -> list[list[str]]:
    """Commands that create the switch and plug the machine into it."""
    peer = f"{MACHINE_LINK}-sw"
    return [
        ["ip", "netns", "add", SWITCH_NETNS],
        _in(SWITCH_NETNS, "link", "set", "lo", "up"),
        _in(SWITCH_NETNS, "link", "add", BRIDGE, "type", "bridge"),
        _in(SWITCH_NETNS, "link", "set", BRIDGE, "up"),
        ["ip", "link", "add", MACHINE_LINK, "type", "veth", "peer", "name", peer, "netns", SWITCH_NETNS],
        _in(SWITCH_NETNS, "link", "set", peer, "master", BRIDGE, "up"),
        ["ip", "addr", "add", f"{GATEWAY_V4}/{_V4_PREFIX}", "dev", MACHINE_LINK],
        ["ip", "-6", "addr", "add", f"{GATEWAY_V6}/{_V6_PREFIX}", "dev", MACHINE_LINK, "nodad"],
        ["ip", "link", "set", MACHINE_LINK, "up"],
    ]


def host_commands(spec: HostSpec) -> list[list[str]]:
    """Commands that make the namespace ``spec`` boots in and plug its ``eth0`` into the switch.

    systemd-nspawn moves that ``eth0`` into the host's own network namespace, made with (so owned by) the host's
    user namespace: its root may then set firewall rules and addresses, as on a rented server, while the switch
    port it is plugged into stays the machine's (:func:`port_guard`). The addresses come once it booted
    (:func:`address_commands`).
    """
    ns = spec.netns
    return [
        ["ip", "netns", "add", ns],
        _in(SWITCH_NETNS, "link", "add", spec.switch_link, "type", "veth", "peer", "name", "eth0", "netns", ns),
        _in(SWITCH_NETNS, "link", "set", spec.switch_link, "master", BRIDGE, "up"),
        _in(ns, "link", "set", "eth0", "address", spec.mac),
    ]


def address_commands(spec: HostSpec) -> list[list[str]]:
    """Commands run in the booted host's network namespace: its fixed addresses and routes, as a provider's
    network configuration hands them over.

    >>> from mailkit.lab.layout import HOSTS
    >>> ["ip", "addr", "add", "198.51.100.25/24", "dev", "eth0"] in address_commands(HOSTS["mail"])
    True
    """
    return [
        ["ip", "link", "set", "lo", "up"],
        ["ip", "addr", "add", f"{spec.address}/{_V4_PREFIX}", "dev", "eth0"],
        ["ip", "-6", "addr", "add", f"{spec.address6}/{_V6_PREFIX}", "dev", "eth0", "nodad"],
        *[["ip", "addr", "add", f"{extra}/{_V4_PREFIX}", "dev", "eth0"] for extra in spec.extra_addresses],
        ["ip", "link", "set", "eth0", "up"],
        ["ip", "route", "add", "default", "via", GATEWAY_V4],
        ["ip", "-6", "route", "add", "default", "via", GATEWAY_V6],
    ]


def configure_host(spec: HostSpec, netns: Path) -> None:
    """Give the booted host (its network namespace at ``netns``, ``/proc/PID/ns/net``) its addresses."""
    for argv in address_commands(spec):
        run_local(["nsenter", f"--net={netns}", "--", *argv])


def lab_namespaces() -> list[str]:
    """Every network namespace the lab owns that exists now (found by name prefix)."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(f"{PREFIX}-"))


def create_switch() -> None:
    if SWITCH_NETNS in lab_namespaces():
        return
    for argv in switch_commands():
        run_local(argv)


def port_guard(spec: HostSpec) -> str:
    """nftables rules for the host's port on the switch: frames only from its own MAC, packets (and ARP) only
    from its own addresses. Root on a lab host (a student's) can then not pose as another host, as a
    provider's switch port security forbids on a rented server. One table per port, replaced whole.

    >>> from mailkit.lab.layout import HOSTS
    >>> "ip saddr != { 198.51.100.25 } drop" in port_guard(HOSTS["mail"])
    True
    """
    table = _guard_table(spec)
    port = f'iifname "{spec.switch_link}"'
    v4 = ", ".join((spec.address, *spec.extra_addresses))
    return (
        f"table bridge {table}\ndelete table bridge {table}\n"
        f"table bridge {table} {{\n    chain forward {{\n"
        "        type filter hook forward priority 0; policy accept;\n"
        f"        {port} ether saddr != {spec.mac} drop\n"
        f"        {port} ether type != {{ arp, ip, ip6 }} drop\n"
        f"        {port} ether type arp arp saddr ip != {{ {v4} }} drop\n"
        f"        {port} ether type ip ip saddr != {{ {v4} }} drop\n"
        f"        {port} ether type ip6 ip6 saddr != {{ {spec.address6}, fe80::/10 }} drop\n"
        "    }\n}\n"
    )


def create_host_network(spec: HostSpec) -> None:
    """The namespace ``spec`` boots in and its switch port, made anew (no block on it), with the port's guard."""
    if spec.netns in lab_namespaces():
        delete_namespace(spec.netns)
    _unplug(spec)
    for argv in host_commands(spec):
        run_local(argv)
    run_local(["ip", "netns", "exec", SWITCH_NETNS, "nft", "-f", "-"], input=port_guard(spec))


def delete_host_network(spec: HostSpec) -> None:
    """Unplug a host: its namespace, its switch port (and so its veth) and the port's guard and block."""
    delete_namespace(spec.netns)
    _unplug(spec)
    unguard = ["nft", "delete", "table", "bridge", _guard_table(spec)]
    run_local(["ip", "netns", "exec", SWITCH_NETNS, *unguard], check=False)


def _unplug(spec: HostSpec) -> None:
    """The host's veth goes when its own namespace does, which the kernel frees a moment after the host stopped:
    delete the switch's end now (it takes the other end with it), and the block on that port."""
    run_local(_in(SWITCH_NETNS, "link", "delete", spec.switch_link), check=False)
    unblock_outbound(spec)


def outbound_block(spec: HostSpec, port: int = 25, *, silent: bool = False) -> str:
    """nftables rules that refuse every connection the host opens to ``port`` elsewhere, as many hosting providers
    do to port 25 on new accounts. They sit on the host's port of the switch, which the machine owns: root on the
    host cannot lift them, as a customer cannot lift the provider's. The lab resets the connection (a provider may
    drop it instead: then the sender waits for a timeout), so mail waits in the queue at once, with the reason.
    ``silent``: every packet the host sends to ``port`` (TCP and UDP) is dropped without a word instead, as by a
    network that lost it: the sender learns only by waiting (a name server out of reach for a moment).

    >>> from mailkit.lab.layout import HOSTS
    >>> rules = outbound_block(HOSTS["mail"])
    >>> 'hook ingress device "mk-mail" priority 0' in rules, "tcp dport 25 reject with tcp reset" in rules
    (True, True)
    >>> "meta l4proto { tcp, udp } th dport 53 drop" in outbound_block(HOSTS["mail"], 53, silent=True)
    True
    """
    table = _block_table(spec, port)
    if silent:
        rule = f"meta l4proto {{ tcp, udp }} th dport {port} drop"
    else:
        rule = f"meta l4proto tcp tcp dport {port} reject with tcp reset"
    return (
        f"table netdev {table}\ndelete table netdev {table}\n"
        f"table netdev {table} {{\n    chain from_host {{\n"
        f'        type filter hook ingress device "{spec.switch_link}" priority 0; policy accept;\n'
        f"        {rule}\n"
        "    }\n}\n"
    )


def block_outbound(spec: HostSpec, port: int = 25, *, silent: bool = False) -> None:
    """Refuse the host's outgoing connections to ``port`` (the lab as a provider that blocks port 25); ``silent``:
    drop what it sends there without a word (:func:`outbound_block`).

    A reset of the host hands over a fresh server without the block, as its switch port is made anew.
    """
    rules = outbound_block(spec, port, silent=silent)
    run_local(["ip", "netns", "exec", SWITCH_NETNS, "nft", "-f", "-"], input=rules)


def unblock_outbound(spec: HostSpec, port: int = 25) -> None:
    """Lift :func:`block_outbound` (no error when nothing was blocked)."""
    unblock = ["nft", "delete", "table", "netdev", _block_table(spec, port)]
    run_local(["ip", "netns", "exec", SWITCH_NETNS, *unblock], check=False)


def outbound_blocked(spec: HostSpec, port: int = 25) -> bool:
    """Whether the lab blocks the host's outgoing connections to ``port``."""
    seen = run_local(["ip", "netns", "exec", SWITCH_NETNS, "nft", "list", "tables"], check=False)
    return f"table netdev {_block_table(spec, port)}" in seen.stdout


def _block_table(spec: HostSpec, port: int) -> str:
    return f"block{port}_" + spec.switch_link.replace("-", "_")


def _guard_table(spec: HostSpec) -> str:
    return "guard_" + spec.switch_link.replace("-", "_")


def delete_namespace(name: str) -> None:
    """Delete one namespace; its veth ends go with it."""
    run_local(["ip", "netns", "delete", name], check=False)


def machine_link_exists() -> bool:
    """Whether the machine's end of the switch's veth exists in this process's network namespace. Asked over
    netlink: ``/sys/class/net`` shows the namespace sysfs was mounted in, not one a suite's half entered (there the
    link looked absent, was never deleted, and the next ``lab up`` found it: 'File exists')."""
    return run_local(["ip", "-o", "link", "show", "dev", MACHINE_LINK], check=False).ok


def delete_all(wait: float = 10) -> None:
    """Remove every lab namespace and the machine's link, and wait (up to ``wait`` seconds) until the link is gone:
    deleting a namespace removes its veths, and the kernel ends the pair's other half a little later."""
    for name in lab_namespaces():
        delete_namespace(name)
    if machine_link_exists():
        run_local(["ip", "link", "delete", MACHINE_LINK], check=False)
    deadline = time.monotonic() + wait
    while machine_link_exists():
        if time.monotonic() > deadline:
            raise LabError(f"the link {MACHINE_LINK} is still there {wait:g} s after it was deleted")
        time.sleep(0.05)
