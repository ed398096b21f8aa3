"""The one canonical form of a protected request's host and path, on which every access rule,
redirect target, log line and metric is decided.

A proxy and the app behind it read a raw request target their own way (`/public/../admin`,
`/%61dmin`, `//admin`, `/admin;x`); a gateway that matches the raw text judges another resource
than the one served (CWE-647). So the target is read once, here: percent-decoded once, repeated
slashes merged, `;params` dropped and a literal `\\` read as `/` for the canonical path, with
the other readings (parameters kept, `\\` as a character) kept beside it so that a decision can
hold for every server's reading. What servers read in different ways, and browsers never send,
is refused (`TargetRefused`) rather than guessed: dot segments in any spelling (Caddy and nginx
resolve them, most apps route on them as sent), a leading `//`, encoded `/` or `\\`, NUL and
control characters, invalid or overlong UTF-8, anything still percent-encoded after one decode,
a literal `#`, targets not in origin form, characters that Unicode normalisation turns into `/`,
`\\`, `.`, `;`, `%`, `?` or `#`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import AddressValueError, IPv6Address
from itertools import product
from typing import Literal, NoReturn
from urllib.parse import quote

EncodedSlashes = Literal["reject", "keep"]

MAX_TARGET_LENGTH = 8192
_CACHED_LENGTH = 256

# Targets with nothing to normalise (the overwhelming majority): one regex and done. No `%`,
# `\`, `;`, no empty segment, none that ends in a dot (which covers `.`, `..`, and the `name.`
# that Windows reads as `name`).
_PLAIN_PATH = re.compile(r"(?:/[A-Za-z0-9\-._~!$&'()*+,=:@]*[A-Za-z0-9\-_~!$&'()*+,=:@])*/?")
# Printable ASCII without `#`: what may appear literally in a target at all.
_TARGET_CHARS = re.compile(r"[\x21\x22\x24-\x7e]*")
_HEX = frozenset("0123456789abcdefABCDEF")
_STILL_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")
_DECODED_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Characters whose meaning to a path parser must not appear by another spelling.
_SIGNIFICANT = frozenset("/\\.;%?#")
# What quote() may leave as it is in a segment's name: RFC 3986 pchar minus `%` and `;`.
_NAME_SAFE = "!$&'()*+,=:@~"

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


class TargetRefused(ValueError):
    """The request target or host cannot be read one unambiguous way; the message says why."""


@dataclass(frozen=True, slots=True)
class Target:
    """A canonical request target.

    `path` is what rules match: decoded, slashes merged, `;params` dropped, `\\` read as `/`
    (with ENCODED_SLASHES=keep, an encoded slash stays `%2F`). `readings` are the other paths a
    server could take the same target for (see `_Flags`: parameters kept, `\\` as a character,
    names trimmed, NFKC); a rule decision must hold for each of them. `url_path` is `path`
    re-encoded with its parameters, for URLs. `query` is the raw query string.
    """

    path: str
    url_path: str
    query: str
    readings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Authority:
    """A canonical host: lower-case, without a trailing dot; `port` only when not the default."""

    host: str
    port: str | None

    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def canonical_target(raw: str, encoded_slashes: EncodedSlashes = "reject") -> Target:
    """The canonical form of an origin-form request target (`/path?query`).

    Raises TargetRefused for a target that cannot be made unambiguous.
    """
    if len(raw) <= _CACHED_LENGTH:  # short targets repeat; long ones must not fill memory
        return _cached_target(raw, encoded_slashes)
    return _canonical_target(raw, encoded_slashes)


@lru_cache(maxsize=4096)
def _cached_target(raw: str, encoded_slashes: EncodedSlashes) -> Target:
    return _canonical_target(raw, encoded_slashes)


def _canonical_target(raw: str, encoded_slashes: EncodedSlashes) -> Target:
    if len(raw) > MAX_TARGET_LENGTH:
        raise TargetRefused("the request target is longer than 8192 characters")
    path, _, query = raw.partition("?")
    if path.startswith("/") and _PLAIN_PATH.fullmatch(path) and _TARGET_CHARS.fullmatch(query):
        return Target(path, path, query)
    if not raw.startswith("/"):
        _refuse_not_origin_form(raw)
    if not _TARGET_CHARS.fullmatch(raw):
        if "#" in raw:
            raise TargetRefused("the request target holds a literal '#'")
        raise TargetRefused("the request target holds spaces, control or non-ASCII characters")
    return _canonical_path(path, query, encoded_slashes == "keep")


def _refuse_not_origin_form(raw: str) -> NoReturn:
    if raw == "*":
        raise TargetRefused("the request target '*' names no resource")
    raise TargetRefused("the request target is not a path starting with '/' (origin form)")


def _canonical_path(path: str, query: str, keep_slashes: bool) -> Target:
    if path.startswith("//"):
        raise TargetRefused("the path starts with '//', which some servers read as a host name")
    segments: list[tuple[str, str | None]] = []  # decoded name, decoded ;params (or None)
    for piece in path[1:].split("/"):
        # Parameters are split off at a literal ';' (an encoded one is data, as to Tomcat; some
        # apps split at a decoded one too: a reading below).
        raw_name, semicolon, raw_params = piece.partition(";")
        name = _decode(raw_name, keep_slashes)
        params = _decode(raw_params, keep_slashes) if semicolon else None
        if _has_dot_segment(name, keep_slashes) or _has_dot_segment(params, keep_slashes):
            # Servers disagree on dot segments: some resolve them, many apps route on them as
            # they are. Browsers resolve them before sending, so only scripts send them.
            raise TargetRefused("a dot segment ('.' or '..', in any spelling) in the path")
        if semicolon and not name.strip("\\"):
            raise TargetRefused("a path segment made only of ';' parameters")
        if name:
            segments.append((name, params))
    trailing = path.endswith(("/", "\\"))
    canonical = _reading(segments, trailing, _CANONICAL)
    readings: dict[str, None] = {}
    for flags in _reading_flags(path, canonical, segments):
        reading = _reading(segments, trailing, flags)
        if reading != canonical:
            readings[reading] = None
    encoded = []
    for name, params in segments:
        for part in filter(None, name.split("\\")):
            encoded.append(quote(part, safe=_NAME_SAFE))
        if params is not None:
            encoded[-1] += ";" + quote(params, safe=_NAME_SAFE)
    tail = "/" if trailing and encoded else ""
    return Target(canonical, "/" + "/".join(encoded) + tail, query, tuple(readings))


@dataclass(frozen=True, slots=True)
class _Flags:
    """How one kind of server reads a path."""

    drop_params: bool = True  # `;params` dropped (Tomcat, Spring) or part of the name (Go, nginx)
    split_backslash: bool = True  # `\\` a separator (Windows, IIS) or a character
    decoded_semicolons: bool = False  # a decoded `%3B` also starts parameters (Shiro-style)
    trim: bool = False  # trailing dots and spaces dropped from names (Windows)
    nfkc: bool = False  # Unicode compatibility forms folded (fullwidth `A` is `A`)


_CANONICAL = _Flags()


def _reading_flags(
    path: str, canonical: str, segments: list[tuple[str, str | None]]
) -> list[_Flags]:
    """Every combination of the readings this path gives a server room for; usually none."""
    names = [part for name, _ in segments for part in name.split("\\")]
    choices = {
        "drop_params": (True, False) if ";" in path else (True,),
        "split_backslash": (True, False) if "\\" in path else (True,),
        "decoded_semicolons": (False, True) if any(";" in n for n in names) else (False,),
        "trim": (False, True) if any(n.endswith((".", " ")) for n in names) else (False,),
        "nfkc": (False, True) if not canonical.isascii() else (False,),
    }
    if all(len(values) == 1 for values in choices.values()):
        return []
    return [_Flags(*values) for values in product(*choices.values())]


def _reading(segments: list[tuple[str, str | None]], trailing: bool, flags: _Flags) -> str:
    """The path as one kind of server reads it (see _Flags). A kept encoded slash shows as %2F."""
    names: list[str] = []
    for name, params in segments:
        text = name if flags.drop_params or params is None else f"{name};{params}"
        for part in text.split("\\") if flags.split_backslash else [text]:
            if flags.decoded_semicolons:
                part = part.split(";", 1)[0]
            if flags.trim:
                part = part.rstrip(". ")
            if part:
                names.append(part.replace("/", "%2F"))
    tail = "/" if trailing and names else ""
    joined = "/" + "/".join(names) + tail
    return unicodedata.normalize("NFKC", joined) if flags.nfkc else joined


def _has_dot_segment(text: str | None, keep_slashes: bool) -> bool:
    """Whether any reading of `text` holds a `.` or `..` segment: split at `\\` (and a kept
    encoded `/`), cut at a decoded `;`, trailing dots and spaces trimmed."""
    if not text:
        return False
    for part in (text.replace("/", "\\") if keep_slashes else text).split("\\"):
        for candidate in (part, part.split(";", 1)[0]):
            if candidate and candidate.rstrip(". ").strip(".") == "":
                return True
    return False


def _decode(piece: str, keep_slashes: bool) -> str:
    """One path segment, percent-decoded once and checked."""
    if "%" not in piece:
        return piece
    chunks = piece.split("%")
    raw = bytearray(chunks[0].encode("ascii"))
    for chunk in chunks[1:]:
        if len(chunk) < 2 or chunk[0] not in _HEX or chunk[1] not in _HEX:
            raise TargetRefused("a '%' in the path is not followed by two hex digits")
        byte = int(chunk[:2], 16)
        if byte == 0x2F and not keep_slashes:
            raise TargetRefused("an encoded slash (%2F) in the path")
        if byte == 0x5C:
            raise TargetRefused("an encoded backslash (%5C) in the path")
        raw.append(byte)
        raw.extend(chunk[2:].encode("ascii"))
    try:
        text = raw.decode("utf-8")  # strict: refuses overlong forms such as %c0%ae
    except UnicodeDecodeError:
        raise TargetRefused("the decoded path is not valid UTF-8") from None
    if _DECODED_CONTROL.search(text):
        raise TargetRefused("the decoded path holds NUL or control characters")
    if _STILL_ENCODED.search(text):
        raise TargetRefused("the path is percent-encoded twice (e.g. %252e)")
    if not text.isascii():
        for char in text:
            if ord(char) > 0x7F and _SIGNIFICANT.intersection(unicodedata.normalize("NFKC", char)):
                raise TargetRefused(
                    f"the path holds U+{ord(char):04X}, which normalises to a path delimiter"
                )
    return text


@lru_cache(maxsize=1024)
def canonical_authority(netloc: str, scheme: str) -> Authority:
    """The canonical host (and non-default port) of `netloc` from a Host-like header.

    Raises TargetRefused for user info, illegal characters, a bad port or an empty host.
    """
    if len(netloc) > 262:  # 253 for the name, 6 for the port, brackets
        raise TargetRefused("the host is longer than a host name can be")
    if "@" in netloc:
        raise TargetRefused("the host holds user info ('@')")
    if netloc.startswith("["):
        end = netloc.find("]")
        literal, rest = netloc[1:end], netloc[end + 1 :]
        if end < 0 or (rest and not rest.startswith(":")):
            raise TargetRefused("the host is not a valid bracketed IPv6 address")
        try:
            host = str(IPv6Address(literal))
        except AddressValueError:
            raise TargetRefused("the host is not a valid bracketed IPv6 address") from None
        port = rest[1:] if rest else None
    else:
        name, colon, port_text = netloc.partition(":")
        host = name.lower()
        port = port_text if colon else None
        if host.endswith("."):
            host = host[:-1]
        if not host or len(host) > 253 or not _HOSTNAME.fullmatch(host):
            raise TargetRefused("the host is not a valid host name")
    if port is not None:
        if not port.isascii() or not port.isdigit() or not 0 < int(port) <= 65535:
            raise TargetRefused("the host's port is not a number from 1 to 65535")
        port = str(int(port))
        if _DEFAULT_PORTS.get(scheme) == port:
            port = None
    return Authority(host, port)
