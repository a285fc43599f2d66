#!/usr/bin/python3
"""No key or PSK in any log or error: the check the secret-handling suites end with.

Given the secrets a suite used (ESP keys, PSKs, TLS and IKE private keys, the CHILD_SA keys a
strongSwan peer derived), every form a leak could take is derived, and the suite's logs and
error outputs are searched for any piece of at least MIN_BYTES bytes of key material (MIN_TEXT
characters of a printable secret) in any of them:

  raw       the bytes themselves (only when printable: a PSK, a key that is text)
  hex       lower or upper case (the text is searched case-blind), and with ":", " " or "-"
            between the bytes ("aa:bb", "AA BB": strongSwan's dumps, openssl's -text)
  base64    standard and URL-safe, padded or not, at each of the three byte alignments (so a
            piece cut anywhere is found), and as JSON writes it ("\\/" for "/"), which is how
            cipher_key and integrity_key sit in a config file or a transaction's JSON

A finding names the file (or the label of a string), the line, the secret's name
("sas[0].cipher_key", "peers[0].psk") and the form, never the secret itself.

From python:  s = Secrets(); s.add("name", b"..."); s.add_config("intent.json")
              ok, what, details = s.check([tmp], Outputs-recorded texts)  (one check line)
From a shell: keygrep.py --self-test --config intent.json --pem NAME=key.pem --secret NAME=TEXT \\
                  --strongswan-keys keys.log --skip 'study/*' --scan "$MX_TMP"
              (test/lib/keygrep.sh: keygrep_check PASS_FN FAIL_FN ARGS... counts its lines)
A file given as --config, --pem or --strongswan-keys holds secrets by right and is not searched; under a
directory every file is searched but those matching --skip and binary ones (a NUL byte in the
first 4 KiB: pcaps, DICOM images). Prints each finding as a FAIL line, then one
"PASS no key or PSK in any log or error of this suite (N files, K secrets)" or its FAIL twin;
exit status 1 on a finding. --self-test first plants keys in every form and wants each found.
"""
import argparse
import base64
import fnmatch
import json
import os
import re
import sys
import tempfile
import time

MIN_BYTES = 8  # of a key: shorter pieces would match by chance
MIN_TEXT = 16  # of a printable secret (a PSK): text shares words with paths and messages
# JSON fields whose string values are secrets: base64 bytes (ESP keys) or text (PSKs). A field
# naming a PEM file (private_key in an intent) adds the key in that file.
BYTES_FIELDS = ("cipher_key", "integrity_key")
TEXT_FIELDS = ("psk", "secret", "password")
PEM_FIELDS = ("private_key", "key_file")


def forms(data):
    """[(form, text, window)] of a secret: each text is searched for pieces of it at least a
    window long (the length of MIN_BYTES bytes in that form, MIN_TEXT for a printable secret)."""
    out = []
    n = MIN_BYTES
    if all(32 <= b < 127 for b in data):
        n = MIN_TEXT
        out.append(("raw", data.decode("ascii"), n))
    h = data.hex()
    out.append(("hex", h, 2 * n))
    for sep in ":", " ", "-":
        out.append(("hex aa%sbb" % sep, sep.join(h[i:i + 2] for i in range(0, len(h), 2)), 3 * n - 1))
    for shift in range(3):
        part = data[shift:]
        if len(part) < n:
            break
        std = base64.b64encode(part).decode().rstrip("=")
        url = base64.urlsafe_b64encode(part).decode().rstrip("=")
        window = -(-n * 4 // 3)
        out.append(("base64", std, window))
        if url != std:
            out.append(("base64url", url, window))
        if "/" in std:
            out.append(("base64 as JSON writes it", std.replace("/", "\\/"), window))
    return out


class Secrets:
    def __init__(self):
        self.items = []  # (name, bytes)
        self.inputs = set()  # files that hold secrets by right: not searched

    def add(self, name, value):
        """A secret: bytes, or text (a PSK) taken as its UTF-8 bytes."""
        if isinstance(value, str):
            value = value.encode()
        if value and value not in (v for _, v in self.items):  # one name a secret
            self.items.append((name, bytes(value)))

    def add_pem(self, name, path):
        """The private key in a PEM file: its secret numbers (an EC key's scalar, an RSA key's d,
        p and q), not the whole DER, whose public half and curve OIDs the certificates and
        their dumps hold by right."""
        self.inputs.add(os.path.realpath(path))
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, ed448, rsa
        try:
            key = serialization.load_pem_private_key(open(path, "rb").read(), password=None)
        except (ValueError, TypeError):
            return

        def number(n):
            return n.to_bytes((n.bit_length() + 7) // 8, "big")
        if isinstance(key, ec.EllipticCurvePrivateKey):
            size = (key.curve.key_size + 7) // 8
            self.add(name, key.private_numbers().private_value.to_bytes(size, "big"))
        elif isinstance(key, rsa.RSAPrivateKey):
            n = key.private_numbers()
            for part in "d", "p", "q":
                self.add("%s (%s)" % (name, part), number(getattr(n, part)))
        elif isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
            self.add(name, key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                             serialization.NoEncryption()))

    def add_strongswan_keys(self, path):
        """The CHILD_SAs' keys a charon logged (its chd group at level 4: "encryption initiator
        key => 20 bytes @ ..." and a hex dump); the log itself is not searched."""
        self.inputs.add(os.path.realpath(path))
        lines = open(path, errors="replace").read().splitlines()
        i, n = 0, 0
        while i < len(lines):
            m = re.search(r"\] ((?:encryption|integrity) (?:initiator|responder) key) => (\d+) bytes @", lines[i])
            i += 1
            if not m:
                continue
            want, data = int(m.group(2)), b""
            while len(data) < want and i < len(lines):
                h = re.match(r".*\]\s+\d+: ((?:[0-9A-F]{2} )*[0-9A-F]{2})", lines[i])
                if not h:
                    break
                data += bytes.fromhex(h.group(1).replace(" ", ""))
                i += 1
            if len(data) >= want:
                n += 1
                self.add("CHILD_SA %s #%d (from %s)" % (m.group(1), n, os.path.basename(path)), data[:want])

    def add_config(self, source, prefix=""):
        """The secrets of a config, intent or transaction: a path, JSON text or a parsed object."""
        if isinstance(source, str) and os.path.exists(source):
            self.inputs.add(os.path.realpath(source))
            base = os.path.dirname(source)
            try:
                source = json.load(open(source))
            except ValueError:
                return
        else:
            base = "."
            if isinstance(source, (str, bytes)):
                source = json.loads(source)
        self._walk(source, prefix, base)

    def _walk(self, node, path, base):
        if isinstance(node, dict):
            for k, v in node.items():
                p = "%s.%s" % (path, k) if path else k
                if isinstance(v, str) and k in BYTES_FIELDS:
                    try:
                        self.add(p, base64.b64decode(v, validate=True))
                    except ValueError:
                        self.add(p, v)  # not base64: the text as written is the secret
                elif isinstance(v, str) and k in TEXT_FIELDS:
                    self.add(p, v)
                elif isinstance(v, (int, float)) and not isinstance(v, bool) and k in BYTES_FIELDS + TEXT_FIELDS:
                    self.add(p, str(v))  # not a string: the number as written is the secret
                elif isinstance(v, str) and k in PEM_FIELDS:
                    f = v if os.path.isabs(v) else os.path.join(base, v)
                    if os.path.isfile(f):
                        self.add_pem(p, f)
                else:
                    self._walk(v, p, base)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                self._walk(v, "%s[%d]" % (path, i), base)

    def _needles(self):
        """Per secret and form: the form's text, the window (chars of MIN_BYTES bytes), and
        anchors of half a window at fixed steps: any window holds one whole, so the text is
        searched for the anchors only and a hit is then grown to the longest common run."""
        if getattr(self, "_cache", None) is not None and self._cache[0] == len(self.items):
            return self._cache[1]
        out = []
        for name, data in self.items:
            for form, text, window in forms(data):
                window = min(len(text), window)
                step = max(1, -(-window // 2))
                anchors = {text[i:i + step]: i for i in range(0, len(text) - step + 1, step)}
                blind = form.startswith("hex")
                out.append((name, form, text.lower() if blind else text, window, anchors, blind))
        self._cache = (len(self.items), out)
        return out

    # Where each kind of form can be: runs of its alphabet at least a window long. Only these
    # are searched (most of a log is words and numbers), joined by NULs that no form holds.
    RUNS = {"raw": None,
            "hex": re.compile(r"[0-9a-f:\- ]{15,}"),
            "base64": re.compile(r"[A-Za-z0-9+/_\-\\]{8,}")}

    @staticmethod
    def _runs(text, pattern):
        """(joined runs, [(joined start, text start)]) of a text's runs of an alphabet."""
        parts, starts, at = [], [], 0
        for m in pattern.finditer(text):
            starts.append((at, m.start()))
            parts.append(m.group())
            at += len(m.group()) + 1
        return "\0".join(parts), starts

    def scan_text(self, label, text):
        """Findings [(label, line, secret name, form)] in one text."""
        if isinstance(text, bytes):
            text = text.decode("latin-1")
        import bisect
        hays = {}
        found = set()
        for name, form, ftext, window, anchors, blind in self._needles():
            kind = "raw" if form == "raw" else "hex" if blind else "base64"
            if kind not in hays:
                if kind == "raw":
                    hays[kind] = (text, [(0, 0)])
                else:
                    hays[kind] = self._runs(text.lower() if blind else text, self.RUNS[kind])
            hay, starts = hays[kind]
            for anchor, at in anchors.items():
                pos = hay.find(anchor)
                while pos >= 0:
                    # Grow the hit both ways while the text follows the form.
                    a, b = pos, at
                    while a > 0 and b > 0 and hay[a - 1] == ftext[b - 1]:
                        a, b = a - 1, b - 1
                    end, fend = pos + len(anchor), at + len(anchor)
                    while end < len(hay) and fend < len(ftext) and hay[end] == ftext[fend]:
                        end, fend = end + 1, fend + 1
                    if end - a >= window:
                        joined, orig = starts[bisect.bisect_right(starts, (a, len(text))) - 1]
                        a0 = orig + a - joined
                        shown = form
                        if blind and text[a0:a0 + end - a] != ftext[b:fend] and \
                                any(c.isalpha() for c in text[a0:a0 + end - a]):
                            shown = form.replace("hex", "HEX")
                        found.add((label, text.count("\n", 0, a0) + 1, name, shown))
                    pos = hay.find(anchor, pos + 1)
        return sorted(found)

    def scan(self, paths, skip=()):
        """Searches files and directories (recursively); returns (findings, files searched)."""
        findings, files = [], 0
        for path in paths:
            walk = [(path, "")] if os.path.isfile(path) else \
                [(os.path.join(d, f), os.path.relpath(os.path.join(d, f), path))
                 for d, _, fs in os.walk(path) for f in fs]
            for f, rel in sorted(walk):
                if os.path.realpath(f) in self.inputs or not os.path.isfile(f):
                    continue
                if rel and any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(os.path.basename(f), g) for g in skip):
                    continue
                try:
                    with open(f, "rb") as fh:
                        data = fh.read()
                except OSError:
                    continue
                if b"\0" in data[:4096]:
                    continue
                files += 1
                findings += self.scan_text(f, data)
        return findings, files

    def check(self, paths=(), texts=(), skip=()):
        """Searches files and directories, and texts [(label, text)]: (ok, what, details) for a
        suite's check line; details name each finding, never the secret."""
        t0 = time.monotonic()
        findings, files = self.scan(paths, skip)
        for label, text in texts:
            findings += self.scan_text(label, text)
        what = "%d files, %d outputs, %d secrets; %.2f s" % (files, len(texts), len(self.items),
                                                             time.monotonic() - t0)
        details = "; ".join("%s:%d holds %s (%s)" % f for f in findings[:20])
        if len(findings) > 20:
            details += "; and %d more" % (len(findings) - 20)
        if not self.items:
            details = "the suite gave no secrets to look for"
        return not findings and bool(self.items), what, details

    def summary(self, findings, files, seconds=0.0):
        """The check line(s) of a shell suite: a FAIL per finding, then PASS or FAIL over all."""
        lines = ["FAIL %s:%d holds %s (%s)" % f for f in findings]
        what = "%d files, %d secrets; %.2f s" % (files, len(self.items), seconds)
        word = "PASS" if not findings and self.items else "FAIL"
        if not self.items:
            what += ": the suite gave no secrets to look for"
        lines.append("%s no key or PSK in any log or error of this suite (%s)" % (word, what))
        return "\n".join(lines)


class Outputs:
    """What a python suite and the programs it runs print, for Secrets.check: its own stdout and
    stderr (teed as they are written) and the output subprocess.run captured (check_output and
    medixctl calls included); add() takes more (gRPC errors' details)."""

    class _Tee:
        def __init__(self, stream, sink, label):
            self._stream, self._sink, self._label = stream, sink, label

        def write(self, text):
            self._sink.append((self._label, text))
            return self._stream.write(text)

        def __getattr__(self, name):
            return getattr(self._stream, name)

    def __init__(self):
        self._parts = []

    def start(self):
        import subprocess
        sys.stdout = self._Tee(sys.stdout, self._parts, "the suite's stdout")
        sys.stderr = self._Tee(sys.stderr, self._parts, "the suite's stderr")
        run = subprocess.run

        def recording_run(*a, **k):
            r = run(*a, **k)
            cmd = a[0] if a else k.get("args", "?")
            cmd = os.path.basename(str(cmd[0] if isinstance(cmd, (list, tuple)) else cmd).split()[0])
            for name in "stdout", "stderr":
                v = getattr(r, name, None)
                if v:
                    self.add("%s of %s" % (name, cmd), v)
            return r
        subprocess.run = recording_run
        return self

    def add(self, label, text):
        if isinstance(text, bytes):
            text = text.decode("latin-1")
        self._parts.append((label, text))

    def texts(self):
        """[(label, text)]: the suite's own output joined per stream (so line numbers hold)."""
        joined, order = {}, []
        for label, text in list(self._parts):
            if label.startswith("the suite's"):
                if label not in joined:
                    joined[label] = []
                    order.append(label)
                joined[label].append(text)
        return [(label, "".join(joined[label])) for label in order] + \
            [(label, text) for label, text in self._parts if not label.startswith("the suite's")]


def self_test():
    """Plants pieces of keys in every form into temp files and wants each found, at the right
    line, under the secret's name; and wants nothing found in clean text. [] if all is well."""
    problems = []
    key = bytes(range(0xf0, 0x100)) + bytes(range(0x10, 0x20)) + b"\x3f\xff\xfe"  # +, / and = in base64
    psk = "self-test-psk-0123456789"
    s = Secrets()
    s.add("sas[0].cipher_key", key)
    s.add("peers[0].psk", psk)
    piece = key[3:3 + MIN_BYTES + 1]
    plants = [
        ("hex", key.hex()),
        ("HEX", key.hex().upper()),
        ("hex aa:bb", ":".join("%02x" % b for b in key)),
        ("HEX aa bb", " ".join("%02X" % b for b in key)),
        ("hex aa-bb", "-".join("%02x" % b for b in key)),
        ("base64", base64.b64encode(key).decode()),
        ("base64", base64.b64encode(key).decode().rstrip("=")),
        ("base64url", base64.urlsafe_b64encode(key).decode()),
        ("base64url", base64.urlsafe_b64encode(key).decode().rstrip("=")),
        ("base64 as JSON writes it", json.dumps({"cipher_key": base64.b64encode(key).decode()}).replace("/", "\\/")),
        ("hex", "truncated " + piece.hex() + "..."),
        ("base64", "a piece " + base64.b64encode(piece).decode()),
    ]
    with tempfile.TemporaryDirectory(prefix="medix-secrets-") as d:
        for i, (form, text) in enumerate(plants):
            path = os.path.join(d, "plant-%02d.log" % i)
            with open(path, "w") as f:
                f.write("first line\nsecond line: %s\nthird\n" % text)
            got = s.scan_text(path, open(path).read())
            if (path, 2, "sas[0].cipher_key", form) not in got:
                problems.append("the key as %s (plant %d) not found: %s" % (form, i, [g[1:] for g in got]))
        for form, text in (("raw", "psk=%s;" % psk), ("hex", psk.encode().hex()),
                           ("base64", base64.b64encode(psk.encode()).decode())):
            if ("t", 1, "peers[0].psk", form) not in s.scan_text("t", text):
                problems.append("the PSK as %s not found" % form)
        # A charon's dump of a CHILD_SA key (two lines of hex, an ASCII column) gives that key.
        dump = os.path.join(d, "keys.log")
        with open(dump, "w") as f:
            f.write("08[CHD] encryption initiator key => 20 bytes @ 0x7f1ff801e920\n")
            for off in range(0, 20, 16):
                row = key[off:min(off + 16, 20)]
                f.write("08[CHD] %4d: %-48s %s\n" % (off, " ".join("%02X" % b for b in row), "." * len(row)))
        k = Secrets()
        k.add_strongswan_keys(dump)
        if [v for _, v in k.items] != [key[:20]]:
            problems.append("add_strongswan_keys read %s" % [(n, len(v)) for n, v in k.items])
        os.unlink(dump)
        # A config names its secrets by path and is itself not searched; a directory is.
        cfg = os.path.join(d, "config.json")
        with open(cfg, "w") as f:
            json.dump({"sas": [{"spi": 1, "cipher_key": base64.b64encode(key).decode()}],
                       "peers": [{"psk": psk}]}, f)
        c = Secrets()
        c.add_config(cfg)
        if sorted(n for n, _ in c.items) != ["peers[0].psk", "sas[0].cipher_key"]:
            problems.append("add_config found %s" % [n for n, _ in c.items])
        findings, files = c.scan([d])
        if files != len(plants) or len({f[0] for f in findings}) != len(plants):
            problems.append("scanning the directory: %d files, %d with findings (want %d and %d)"
                            % (files, len({f[0] for f in findings}), len(plants), len(plants)))
    ok, _, details = s.check(texts=[("the suite's stdout", "PASS x\nFAIL y: " + base64.b64encode(key).decode())])
    if ok or "the suite's stdout:2 holds sas[0].cipher_key (base64)" not in details:
        problems.append("check() over a text: %s" % details)
    clean = "medix-dp: API: version 3 by uid 0: sa +2; 2 changed in 0.4 ms\n" + key[:MIN_BYTES - 1].hex() + "\n" + \
        "/tmp/" + psk[:MIN_TEXT - 1] + "/x.log\n"
    if s.scan_text("clean", clean):
        problems.append("a finding in clean text (or in %d bytes, fewer than %d)" % (MIN_BYTES - 1, MIN_BYTES))
    if psk in s.summary(s.scan_text("x", psk), 1) or key.hex() in s.summary(s.scan_text("x", key.hex()), 1):
        problems.append("the summary prints a secret")
    return problems


def self_test_line():
    problems = self_test()
    if problems:
        return "\n".join("FAIL the key check's self-test: " + p for p in problems)
    return "PASS the key check finds a planted key in every form (hex, HEX, aa:bb, aa bb, aa-bb, base64, " \
           "base64url, padded or not, JSON-escaped, pieces of %d bytes) and a PSK raw, in hex and base64 (pieces of %d characters)" % (MIN_BYTES, MIN_TEXT)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--self-test", action="store_true", help="plant keys in every form first; want each found")
    ap.add_argument("--config", nargs="+", action="extend", default=[], help="a JSON config/intent/transaction: its secrets")
    ap.add_argument("--pem", nargs="+", action="extend", default=[], help="NAME=FILE: the private key in a PEM file")
    ap.add_argument("--strongswan-keys", nargs="+", action="extend", default=[],
                    help="a charon log at chd level 4: the CHILD_SA keys it derived")
    ap.add_argument("--secret", action="append", default=[], help="NAME=TEXT: a secret given as text")
    ap.add_argument("--skip", action="append", default=[], help="a glob of files under --scan not to search")
    ap.add_argument("--scan", nargs="+", default=[], help="files and directories to search")
    a = ap.parse_args()
    ok = True
    if a.self_test:
        line = self_test_line()
        print(line)
        ok = line.startswith("PASS")
    s = Secrets()
    for c in a.config:
        if os.path.exists(c):
            s.add_config(c)
    for p in a.pem:
        name, _, path = p.partition("=")
        if os.path.exists(path):
            s.add_pem(name, path)
    for f in a.strongswan_keys:
        if os.path.exists(f):
            s.add_strongswan_keys(f)
    for t in a.secret:
        name, _, value = t.partition("=")
        s.add(name, value)
    t0 = time.monotonic()
    findings, files = s.scan(a.scan, a.skip)
    line = s.summary(findings, files, time.monotonic() - t0)
    print(line)
    ok = ok and line.splitlines()[-1].startswith("PASS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
