#!/usr/bin/env python3
"""A small SNTP server (RFC 4330) for the Embassy gateway's clock checks in .ci/embassy.sh. It binds
only the address it is given, inside the test's own network namespace, and stops after a bounded
number of requests or two minutes without one.

usage: sntp-responder.py ADDR PORT MODE [OFFSET_SECS]
  MODE good          answer with this machine's time plus OFFSET_SECS
       wrong-origin  answer, but with an origin timestamp that is not the client's (a forged or stale reply)
"""
import socket
import struct
import sys
import time

NTP_UNIX_DELTA = 2208988800  # seconds from 1900-01-01 to 1970-01-01


def ntp_timestamp(t):
    secs = int(t)
    frac = int((t - secs) * (1 << 32)) & 0xFFFFFFFF
    return struct.pack("!II", (secs + NTP_UNIX_DELTA) & 0xFFFFFFFF, frac)


def main():
    addr, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    offset = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((addr, port))
    sock.settimeout(120)
    print(f"sntp responder on {addr}:{port} ({mode}, offset {offset} s)", flush=True)
    for _ in range(200):
        try:
            data, peer = sock.recvfrom(512)
        except socket.timeout:
            break
        if len(data) < 48:
            continue
        now = time.time() + offset
        version = (data[0] >> 3) & 0x7
        origin = data[40:48]  # the client's transmit timestamp, echoed as our origin timestamp
        if mode == "wrong-origin":
            origin = ntp_timestamp(now - 3600)
        header = struct.pack("!BBbb", (0 << 6) | (version << 3) | 4, 1, 0, -20)  # LI 0, server, stratum 1
        root = struct.pack("!II", 0, 0) + b"LOCL"  # root delay, root dispersion, reference id
        packet = header + root + ntp_timestamp(now - 16) + origin + ntp_timestamp(now) + ntp_timestamp(now)
        sock.sendto(packet, peer)
        print(f"answered {peer[0]}:{peer[1]}", flush=True)


if __name__ == "__main__":
    main()
