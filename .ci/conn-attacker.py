#!/usr/bin/env python3
"""Abusive clients for the Embassy gateway's connection checks in .ci/embassy.sh, run inside the test's
own network namespace against the gateway there. Every socket has a timeout and every loop a bound.

usage: conn-attacker.py MODE HOST PORT COUNT SECONDS [SOURCE]
  idle           COUNT keep-alive connections: one GET each, then silence; reconnect when closed
  dribble        COUNT connections sending a request head one byte every 0.5 s; reconnect when closed
  close-dribble  COUNT connections sending a `Connection: close` request, then a byte every 0.4 s after
                 the answer; reconnect when closed
It runs for SECONDS in all, binding SOURCE (an address of the namespace) when given, and prints one
summary line: connections made and closed by the gateway.
"""
import socket
import sys
import threading
import time

MODE, HOST, PORT, COUNT, SECONDS = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
SOURCE = sys.argv[6] if len(sys.argv) > 6 else None
END = time.monotonic() + SECONDS
stats = {"connects": 0, "closed": 0, "refused": 0}
lock = threading.Lock()


def count(key):
    with lock:
        stats[key] += 1


def connect():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    if SOURCE:
        s.bind((SOURCE, 0))
    s.connect((HOST, PORT))
    count("connects")
    return s


def closed_by_peer(s, wait):
    """Waits up to `wait` seconds for input; True when the gateway closed (or reset) the connection."""
    s.settimeout(max(wait, 0.01))
    try:
        data = s.recv(4096)
        if not data:
            return True
        if data.startswith(b"HTTP/1.1 503"):
            count("refused")
        return False
    except socket.timeout:
        return False
    except OSError:
        return True


def one(n):
    for _ in range(1000):  # reconnections, bounded
        if time.monotonic() >= END:
            return
        try:
            s = connect()
        except OSError:
            time.sleep(0.2)
            continue
        try:
            if MODE == "idle":
                s.sendall(b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n")
                while time.monotonic() < END and not closed_by_peer(s, 1.0):
                    pass
            elif MODE == "dribble":
                head = b"GET / HTTP/1.1\r\nHost: gw\r\nX-Slow: " + b"a" * 4000
                for b in head:
                    if time.monotonic() >= END:
                        break
                    s.sendall(bytes([b]))
                    if closed_by_peer(s, 0.5):
                        break
            else:  # close-dribble
                s.sendall(b"GET / HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
                for _ in range(400):
                    if time.monotonic() >= END or closed_by_peer(s, 0.4):
                        break
                    s.sendall(b"x")
        except OSError:
            pass
        finally:
            count("closed")
            s.close()


threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(COUNT)]
for t in threads:
    t.start()
for t in threads:
    t.join(timeout=SECONDS + 10)
print(f"attacker {MODE}: {stats['connects']} connections, {stats['closed']} ended, {stats['refused']} answered 503",
      flush=True)
