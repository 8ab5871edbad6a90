#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/seed-* from the vectors of PROTOCOL.md §10.

Needs python3 and the zstd command-line tool (frames made from files, so they carry the
content size and a checksum, as the reference's do). The seeds are committed; run this again
only when the vectors or the engine_handle input format change:

    python3 fuzz/make_seeds.py
"""

import os
import pathlib
import struct
import subprocess
import tempfile

# §10 (a), (b), (c): full frames (flag byte 0x00 + msgpack), hex as in the spec.
A = bytes.fromhex(
    "0084a174cc01a26964ae3132372e302e302e313a39303030a3696e6382ae3132372e302e302e313a39303030"
    "cf0000000000000003ae3132372e302e302e313a39303031cf0000000000000001a364656381ae3132372e30"
    "2e302e313a39303030cf0000000000000001"
)
B = bytes.fromhex(
    "0085a174cc02a26964ae3132372e302e302e313a39303031a3696e63c0a3646563c0a3646967cf8cf963b0ef"
    "dc56a4"
)
C = bytes.fromhex(
    "0085a174cc03a26964ae3132372e302e302e313a39303030a3696e63c0a3646563c0a3646967cf8cf963b0ef"
    "dc56a4"
)
# §10 (e): messages the reference decodes (msgpack, no flag byte).
# Compact ints, no dec, no dig: Push id "x", inc {a: 5}.
E1 = bytes.fromhex("83a17401a26964a178a3696e6381a16105")
# DigestPull with a compact dig (7) and an unknown key ("zz": [1, 2]), which is ignored.
E2 = bytes.fromhex("84a17402a26964a178a364696707a27a7a920102")

assert len(A) == 106 and len(B) == 47 and len(C) == 47

# msgpack messages (flag byte stripped) and the sender address of their TCP header.
MESSAGES = {
    "a": (A[1:], "127.0.0.1:9000"),
    "b": (B[1:], "127.0.0.1:9001"),
    "c": (C[1:], "127.0.0.1:9000"),
    "e1": (E1, "127.0.0.1:9002"),
    "e2": (E2, "127.0.0.1:9002"),
}

ROOT = pathlib.Path(__file__).resolve().parent / "corpus"


def zstd(data: bytes, *flags: str) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "m")
        with open(src, "wb") as f:
            f.write(data)
        return subprocess.run(
            ["zstd", "-q", "-c", *flags, src], check=True, capture_output=True
        ).stdout


def header(addr: str) -> bytes:
    a = addr.encode()
    return bytes([len(a)]) + a


def write(target: str, name: str, data: bytes) -> None:
    d = ROOT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data)


# engine_handle ops (see fuzz_targets/engine_handle.rs).
def op_frame(frame: bytes, from_idx: int = 0, dt: int = 0) -> bytes:
    return bytes([2, dt, from_idx]) + struct.pack("<H", len(frame)) + frame


def op_timeout(ms: int, seed: int) -> bytes:
    return bytes([5]) + struct.pack("<H", ms // 10) + bytes([seed])


def op_drain(delivered: int = 0xFF) -> bytes:
    return bytes([6, delivered])


def op_push(from_idx, sender, flags, entries, mutate=None) -> bytes:
    out = bytes([4 if mutate is not None else 3, 0, from_idx, sender, flags, len(entries)])
    for ident, inc, dec in entries:
        out += bytes([ident, inc, dec])
    if mutate is not None:
        out += bytes([len(mutate)])
        for pos, xor in mutate:
            out += struct.pack("<H", pos) + bytes([xor])
    return out


# The named-counter Push vector of docs/EXTENSIONS.md §6.3.
NAMED_PUSH = bytes.fromhex(
    "83a174cc12a26964a3612331a16382a5646f6f72739295a3612331"
    + "cf0000000000000005cf0000000000000001cf0000000000000000cf0000000000000000"
    + "95a3622332cf0000000000000003cf0000000000000000cf0000000000000002cf0000000000000000"
    + "a565786974739195a3612331cf0000000000000001cf0000000000000000cf0000000000000000"
    + "cf0000000000000000"
)


def main() -> None:
    write("named_push", "vector", NAMED_PUSH)
    for name, (msg, addr) in MESSAGES.items():
        write("message_parse", name, msg)
        write("frame_parse", name, header(addr) + b"\x00" + msg)
        write("zstd_frame", name, zstd(msg))
    # A frame as the reference compresses it (content size + checksum), and one without
    # a checksum.
    write("frame_parse", "zstd", header("127.0.0.1:9000") + b"\x80" + zstd(A[1:]))
    write("zstd_frame", "a-nocheck", zstd(A[1:], "--no-check"))
    # Frames whose compressed block declares more than RFC 8878's Block_Maximum_Size allows;
    # ruzstd allocates for them and decodes them, libzstd does not (see zstd_frame.rs).
    # The first and the last were found by this target; the second has a 1 KiB window and
    # 2^20 - 1 RLE literals.
    write("zstd_frame", "oversized-block", bytes.fromhex("28b52ffd00290000002d0000cd00413500"))
    write("zstd_frame", "rle-literals-1mib", bytes.fromhex("28b52ffd00002d0000fdffff3500"))
    # A 57-byte block of a 105-byte window declaring 20,224 sequences (ruzstd reserves them).
    write(
        "zstd_frame",
        "many-sequences",
        bytes.fromhex(
            "28b52ffd2069cd0100740284a174cc3ba26964ae3132372e300000002e302e313a3900007b55498b"
            "5980303030a3696e6382cf0003310130d8d8d8d8d8d8d8d8000284"
        ),
    )
    # Reserved bits set in Symbol_Compression_Modes (0x01 after the 6 sequences): libzstd
    # rejects the frame, ruzstd decodes it. Found by this target.
    write(
        "zstd_frame",
        "reserved-bits",
        bytes.fromhex(
            "28b52ffd0021cd0100740284a174cc01a26964ae3132372e302e302e313a39303030a3696e6382cf"
            "00033101a364656381300601601144c902efed3d0c8735ae9b79"
        ),
    )

    # engine_handle: a mode byte (0: no key, 1: keyed), then operations.
    add_peer_b = bytes([7, 0])
    unkeyed = b"\x00"
    write("engine_handle", "a", unkeyed + op_frame(A) + op_drain() + op_timeout(2000, 1) + op_drain())
    write("engine_handle", "b", unkeyed + add_peer_b + op_frame(B) + op_drain())
    write("engine_handle", "c", unkeyed + op_frame(C, from_idx=1) + op_drain(0))
    write(
        "engine_handle",
        "e",
        unkeyed
        + op_frame(b"\x00" + E1)
        + op_frame(b"\x00" + E2)
        + bytes([0, 5])
        + op_drain(),
    )
    write(
        "engine_handle",
        "zstd",
        unkeyed + op_frame(b"\x80" + zstd(A[1:])) + op_timeout(20000, 3) + op_drain(0x55),
    )
    pushes = (
        add_peer_b
        + op_push(0, 1, 0, [(1, 3, 1), (6, 9, 0), (0, 2, 2)])
        + bytes([1, 2])
        + op_push(1, 2, 1 | 2 | 8, [(7, 1, 0), (6, 10, 4), (7, 5, 5)])
        + op_timeout(2500, 7)
        + op_drain(0x55)
        + op_push(0, 1, 0, [(8, 1, 1)], mutate=[(20, 0x01)])
    )
    write("engine_handle", "push", unkeyed + pushes)
    # Keyed: Pushes sealed with the key (flags bits 4-5 = 0), another key (1), none (2); the
    # spec's unauthenticated vectors (refused); a replay of the last accepted frame (op 9).
    keyed = b"\x01"
    write(
        "engine_handle",
        "keyed",
        keyed
        + add_peer_b
        + op_push(0, 1, 0x00, [(1, 3, 1), (6, 9, 0)])
        + op_push(1, 2, 0x10, [(7, 50, 0)])
        + op_push(1, 2, 0x20 | 2, [(7, 60, 0)])
        + op_frame(A)
        + bytes([9, 0, 9, 1])
        + op_timeout(2500, 7)
        + op_drain(0x55)
        + op_push(0, 1, 0x02 | 0x08, [(8, 1, 1)], mutate=[(20, 0x01)]),
    )
    write("engine_handle", "keyed-push", keyed + pushes)

    # wal_recovery: a setup byte (bits 0-1 segment size, 2-3 first sequence number), then
    # operations (see fuzz_targets/wal_recovery.rs).
    def wal_local(ident, inc, dec):
        return bytes([1, 0, ident, inc, dec])

    def wal_snapshot(entries):
        out = bytes([2, 0, len(entries)])
        for ident, inc, dec in entries:
            out += bytes([ident, inc, dec])
        return out

    next_segment = bytes([0, 1])
    write("wal_recovery", "locals", bytes([2]) + wal_local(0, 1, 0) + wal_local(0, 2, 0) + wal_local(1, 7, 3))
    write(
        "wal_recovery",
        "snapshot-then-locals",
        bytes([2])
        + wal_local(0, 1, 0)
        + next_segment
        + wal_snapshot([(0, 1, 0), (1, 4, 4)])
        + wal_local(0, 2, 0)
        + next_segment
        + wal_local(2, 9, 0),
    )
    # A torn tail: the last record cut 5 bytes short.
    write(
        "wal_recovery",
        "torn-tail",
        bytes([2]) + wal_local(0, 1, 0) + wal_local(0, 2, 0) + bytes([3]) + struct.pack("<H", 5),
    )
    # A gap in the sequence (a segment missing), a flipped byte, a stray file.
    write(
        "wal_recovery",
        "gap",
        bytes([2]) + wal_local(0, 1, 0) + bytes([0, 8]) + wal_local(0, 5, 0),
    )
    write(
        "wal_recovery",
        "flip",
        bytes([2]) + wal_local(0, 1, 0) + wal_local(1, 2, 0) + bytes([5, 0]) + struct.pack("<H", 30) + bytes([0x40]),
    )
    write("wal_recovery", "stray", bytes([1]) + wal_local(0, 1, 0) + bytes([7, 0, 3]) + b"abc")
    write("wal_recovery", "newer-version", bytes([2]) + wal_local(0, 1, 0) + bytes([6, 1]))
    write("wal_recovery", "out-of-range", bytes([2 | (2 << 2)]) + wal_local(0, 1, 0))

    # http_api: a mode byte (0 raw to the node, 1 raw to discovery, 2 node request,
    # 3 discovery request), then its input (see fuzz_targets/http_api.rs).
    token = "fuzz-token-7f3a9c1e"
    write(
        "http_api",
        "raw-increment",
        b"\x00POST /increment HTTP/1.1\r\nHost: n\r\nAuthorization: Bearer "
        + token.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"by\": 5}"
        + b"GET /counter HTTP/1.1\r\nHost: n\r\n\r\n",
    )
    write("http_api", "raw-unauthorized", b"\x00POST /decrement HTTP/1.1\r\nHost: n\r\nContent-Length: 0\r\n\r\n")
    write(
        "http_api",
        "raw-chunked",
        b"\x00POST /increment HTTP/1.1\r\nHost: n\r\nAuthorization: Bearer "
        + token.encode()
        + b"\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"by\r\n5\r\n\": 2}\r\n0\r\n\r\n",
    )
    write(
        "http_api",
        "raw-register",
        b"\x01POST /register HTTP/1.1\r\nHost: d\r\nContent-Length: 27\r\n\r\n{\"addr\": \"127.0.0.1:9000\"}",
    )
    # Node requests: method, target, authorization kind, shape, body.
    write("http_api", "inc-by", bytes([2, 1, 1, 0, 2]) + b'{"by": 7}')
    write("http_api", "dec-empty", bytes([2, 1, 2, 0, 0]))
    write("http_api", "inc-no-token", bytes([2, 1, 1, 1, 0]) + b'{"by": 1}')
    write("http_api", "inc-bad-by", bytes([2, 1, 1, 0, 2]) + b'{"by": -1}')
    write("http_api", "inc-too-large", bytes([2, 1, 1, 0, 3]))
    write("http_api", "get-state", bytes([2, 0, 4, 1, 0]))
    write("http_api", "wrong-method", bytes([2, 2, 0, 0, 0]))
    write("http_api", "register", bytes([3, 0]) + b'{"addr": "127.0.0.1:9001", "http": "http://127.0.0.1:8001"}')
    write("http_api", "heartbeat-bad", bytes([3, 1]) + b'{"addr": "nope"}')


if __name__ == "__main__":
    main()
