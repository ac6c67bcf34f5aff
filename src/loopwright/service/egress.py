"""Where the server may send requests a user chose the URL of (webhooks): public addresses only.

A project lead picks a webhook's URL, but the request leaves from the server, inside its
network. So by default the server refuses loopback, private (RFC 1918, ULA ``fc00::/7``),
link-local (``169.254.169.254``: cloud metadata), shared (``100.64.0.0/10``), multicast,
reserved, unspecified and other non-global addresses, including IPv4 addresses inside IPv6
ones (``::ffff:127.0.0.1``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``). An operator allows
host names or CIDR ranges with ``LOOPWRIGHT_WEBHOOK_ALLOW`` (read in :mod:`loopwright.settings`
and passed in as :class:`EgressPolicy`).

Host names are read the way the resolver reads them: glibc's ``getaddrinfo`` takes
``0x7f000001``, ``2130706433``, ``0177.0.0.1`` and ``127.1`` for ``127.0.0.1``, so
:func:`literal` does too; such spellings are refused outright (:meth:`EgressPolicy.check_url_host`),
as nobody needs them but a filter-dodger. :meth:`EgressPolicy.check_addresses` judges what a
name resolved to, at send time (:mod:`loopwright.service.pinned` connects to those very
addresses, so DNS cannot change its answer between the check and the connection).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from loopwright.errors import Invalid

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ENV = "LOOPWRIGHT_WEBHOOK_ALLOW"
_NUMERIC = re.compile(r"^[0-9a-fx.]+$", re.IGNORECASE)  # what inet_aton might take for an address
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$"
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_PRIVATE = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class Refused(Exception):
    """A destination the policy does not allow; the message says why, in one short line."""


def literal(host: str) -> IPAddress | None:
    """The address a URL host stands for when it is an IP literal in any spelling the resolver
    accepts (``[::1]`` as ``::1``, ``0x7f000001``, ``127.1``, …), else None (a name)."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if _NUMERIC.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def kind(address: IPAddress) -> str | None:
    """What sort of non-public address this is ("loopback", "private", …), or None if public.
    An IPv4 address inside an IPv6 one (mapped, NAT64, 6to4) is judged as that IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return kind(address.ipv4_mapped)
        if address in _NAT64:
            return kind(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None and kind(address.sixtofour) is not None:
            return kind(address.sixtofour)
    checks: tuple[tuple[bool, str], ...] = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address in _SHARED, "shared (carrier-grade NAT)"),
        (any(address in n for n in _PRIVATE), "private"),
        (address.is_reserved, "reserved"),
        (not address.is_global, "non-public"),
    )
    return next((name for hit, name in checks if hit), None)


def _article(text: str) -> str:
    return ("an " if text[0] in "aeiou" else "a ") + text + " address"


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Public addresses, plus the host names and networks the operator allows.

    A host name in ``hosts`` is allowed whatever it resolves to (the operator vouches for it);
    an address in one of ``networks`` is allowed whichever name led there.
    """

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> EgressPolicy:
        """From host names and CIDR ranges or addresses (``10.0.0.0/8``, ``127.0.0.1``, ``::1``);
        :class:`~loopwright.errors.Invalid` names an entry that is neither."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if not _HOSTNAME.match(entry) or literal(entry) is not None:
                raise Invalid(
                    f"{ENV}: {raw.strip()!r} is neither a host name nor an IP address or CIDR range"
                )
            hosts.add(entry)
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def refusal(self, address: IPAddress) -> str | None:
        """Why ``address`` is refused ("a loopback address"), or None when it may be used."""
        candidates = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        if any(a in n for a in candidates for n in self.networks if a.version == n.version):
            return None
        found = kind(address)
        return None if found is None else _article(found)

    def check_url_host(self, host: str) -> None:
        """At subscribe time, without DNS: refuse IP literals the policy does not allow, odd
        spellings of addresses, and ``localhost`` names (RFC 6761: always loopback)."""
        if self.allows_host(host):
            return
        address = literal(host)
        name = host.lower().rstrip(".")
        if address is None:
            if name == "localhost" or name.endswith(".localhost"):
                raise Refused(f"webhook target {host} is a loopback address; {self._hint(name)}")
            return
        why = self.refusal(address)
        odd = address.version == 4 and host != str(address)  # 0x7f000001, 2130706433, 127.1, …
        if why is not None:
            shown = f"{host} ({address})" if odd else host
            plain = getattr(address, "ipv4_mapped", None) or address
            raise Refused(f"webhook target {shown} is {why}; {self._hint(str(plain))}")
        if odd:
            raise Refused(f"webhook target {host} is an unusual spelling of {address}; write {address}")

    def check_addresses(self, host: str, addresses: Sequence[str]) -> list[IPAddress]:
        """At send time: the addresses ``host`` resolved to, each one allowed, or :class:`Refused`
        (any one refused refuses them all: a name may not mix public and internal addresses)."""
        if not addresses:
            raise Refused(f"{host} resolves to no address")
        parsed = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
        if self.allows_host(host):
            return parsed
        for address in parsed:
            why = self.refusal(address)
            if why is not None:
                if literal(host) is not None:  # the address itself, however spelled
                    raise Refused(f"{host} is {why}")
                raise Refused(f"{host} resolves to {address}, {why}")
        return parsed

    @staticmethod
    def _hint(value: str) -> str:
        return f"an operator can allow it with {ENV}={value}"


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (for TCP), as the system resolver answers."""
    found = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))
