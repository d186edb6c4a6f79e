"""Fetching a ``link`` a business sends media by: the gateway downloads it, as Meta's servers do.

A link is the business's value, but the request comes from the gateway's network, so it is checked before
anything is sent and again at every redirect:

- ``http`` or ``https`` only, a host name or address, at most :data:`MAX_REDIRECTS` redirects;
- the host's addresses must all be public (not loopback, private, link-local, multicast, reserved or the
  cloud metadata address): a business cannot make the gateway reach its own network. The request then goes to
  the address that was checked (the host name kept for ``Host`` and TLS), so a DNS answer that changes between
  the check and the connection (rebinding) reaches nothing new. ``allow_private`` turns the address check off,
  for a gateway whose media servers are on its own network (and for tests on one machine);
- the body is counted while it streams and cut at the type's limit (``Content-Length`` is checked first, but
  not trusted); the whole fetch has a deadline of :data:`TIMEOUT_S`.

The MIME type is the response's ``Content-Type``; when that says nothing (``application/octet-stream``) the
link's extension decides, as for a file a browser would download.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import mimetypes
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from cove.business.errors import CloudApiError
from cove.business.gateway import media_rules

TIMEOUT_S = 30.0
MAX_REDIRECTS = 3
BLOCK_BYTES = 256 * 1024
PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Fetched:
    mime: str
    sha256: str  # hex, of the bytes written
    size: int


def failed(link: str, why: str) -> CloudApiError:
    """Meta's answer when it cannot fetch a link: 131053, with what went wrong (the link cut short)."""
    return CloudApiError(131053, f"The media at {link[:200]!r} could not be fetched: {why}.")


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def resolve(host: str, port: int) -> list[str]:
    """Every address of ``host`` (an address resolves to itself, without DNS)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def _address(host: str, port: int, allow_private: bool) -> str:
    """The address to connect to: the host's first, once every address it has is checked."""
    try:
        addresses = await resolve(host, port)
    except OSError as exc:
        raise ValueError(f"its host does not resolve ({exc.strerror or exc})") from None
    if not addresses:
        raise ValueError("its host has no address")
    if not allow_private and not all(_public(a) for a in addresses):
        raise ValueError("its host is not a public address")
    return addresses[0]


async def _target(link: str, allow_private: bool) -> tuple[httpx.URL, str, str]:
    """The URL to request (the checked address in place of the host), the ``Host`` header, and the TLS name."""
    parts = urlsplit(link)
    if parts.scheme not in PORTS or not parts.hostname:
        raise ValueError("only http and https links are fetched")
    if parts.username or parts.password:
        raise ValueError("a link with credentials is not fetched")
    try:
        port = parts.port or PORTS[parts.scheme]
    except ValueError:
        raise ValueError("its port is not a number") from None
    address = await _address(parts.hostname, port, allow_private)
    host = f"[{address}]" if ":" in address else address
    url = httpx.URL(link).copy_with(host=host.strip("[]"), port=port)
    return url, parts.netloc.rpartition("@")[2], parts.hostname


def _mime(response: httpx.Response, link: str) -> str:
    mime = media_rules.mime_of(response.headers.get("content-type"))
    if mime in ("", "application/octet-stream", "binary/octet-stream"):
        mime = media_rules.mime_of(mimetypes.guess_type(urlsplit(link).path)[0])
    return mime


async def _body(response: httpx.Response, link: str, out: Path) -> Fetched:
    mime = _mime(response, link)
    kind = media_rules.kind_of(mime)
    if kind is None:
        raise media_rules.unsupported_type(mime or "(no Content-Type)")
    declared = response.headers.get("content-length")
    limit = media_rules.MAX_BYTES[kind]  # an animated sticker's, until the first bytes tell (check_file)
    if declared and declared.isdigit() and int(declared) > limit:
        raise media_rules.too_large(mime, int(declared), limit)
    digest, size, head = hashlib.sha256(), 0, b""
    with await asyncio.to_thread(open, out, "xb") as sink:
        async for block in response.aiter_bytes(BLOCK_BYTES):
            size += len(block)
            if size > limit:
                raise media_rules.too_large(mime, size, limit)
            if len(head) < 32:
                head += block[: 32 - len(head)]
            digest.update(block)
            await asyncio.to_thread(sink.write, block)
    media_rules.check_file(mime, size, head)
    return Fetched(mime, digest.hexdigest(), size)


async def fetch(http: httpx.AsyncClient, link: str, out: Path, allow_private: bool = False) -> Fetched:
    """Download ``link`` into the new file ``out``; raises :class:`CloudApiError` 131053 saying why not."""
    try:
        async with asyncio.timeout(TIMEOUT_S):
            for _ in range(MAX_REDIRECTS + 1):
                url, host, tls_name = await _target(link, allow_private)
                request = http.build_request("GET", url, headers={"Host": host, "Accept": "*/*"})
                request.extensions["sni_hostname"] = tls_name
                response = await http.send(request, stream=True, follow_redirects=False)
                try:
                    if response.is_redirect and "location" in response.headers:
                        link = urljoin(link, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise ValueError(f"it answered HTTP {response.status_code}")
                    return await _body(response, link, out)
                finally:
                    await response.aclose()
            raise ValueError(f"more than {MAX_REDIRECTS} redirects")
    except CloudApiError as exc:
        await asyncio.to_thread(out.unlink, missing_ok=True)
        raise failed(link, exc.details) from None
    except (ValueError, httpx.HTTPError, OSError, TimeoutError) as exc:
        await asyncio.to_thread(out.unlink, missing_ok=True)
        raise failed(link, str(exc) or type(exc).__name__) from None
