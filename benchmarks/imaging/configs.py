#!/usr/bin/python3
"""medix-dp configs of the imaging benchmark (benchmarks/imaging/run writes the base with
test/netns/lib.sh's mx_write_config and calls this for the rest).

  configs.py core FILE
      FILE (one medix-dp: tenants hosp, hosp-s, hosp-n, archive) gets the IX core: tenant ix,
      leaks, static mappings hosp-s 10.0.0.0/24 <-> 100.64.1.0/24 and archive 192.168.1.0/24 <->
      100.100.2.0/24, a NAPT pool 100.64.9.1 for hosp-n, rules permitting DICOM (11112) and
      iperf3 (5201) from both hospitals to the archive.
  configs.py swan FILE INTENT TAP      (after core; the PSK in the environment, IMAGING_PSK)
      Carrier C's tenant and interface leave FILE for medix-cp's INTENT, which adds the peer
      (strongSwan gateway 192.0.2.2, ids, AES-GCM-128), tenant hosp-c behind it (10.0.0.0/24
      <-> 100.64.3.0/24 in the core) and its rules to the archive; FILE gets the exception TAP.
  configs.py esp ALG FILE_A FILE_B
      Two IX nodes back to back over a carrier veth: A (tenant hosp-a, 10.1.0.1/24) and B
      (tenant hosp-b, 10.2.0.1/24), underlay tenant carrier 198.51.100.1/.2, one tunnel each way
      with both SAs of ALG (gcm: AES-GCM-128; cbc: AES-CBC-128 + HMAC-SHA-256-128), keys fresh
      from os.urandom (written to the two files only, mode 0600, never printed). Node A's
      vdevs: net_af_packet0 its LAN, 1 the carrier; node B's: 0 the carrier, 1 its LAN.
"""
import base64
import json
import os
import sys


def core(path):
    with open(path) as f:
        c = json.load(f)
    c["tenants"].append({"name": "ix", "description": "the IX core", "core": True})

    def leak(tenant, prefix, to):
        return {"tenant": tenant, "prefix": prefix, "next_tenant": to}
    c["routes"] += [leak("hosp-s", "100.64.0.0/10", "ix"), leak("hosp-n", "100.64.0.0/10", "ix"),
                    leak("archive", "100.64.0.0/10", "ix"), leak("ix", "100.64.1.0/24", "hosp-s"),
                    leak("ix", "100.64.9.0/24", "hosp-n"), leak("ix", "100.100.2.0/24", "archive")]
    c["static_mappings"] = [
        {"tenant": "hosp-s", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.1.0/24"},
        {"tenant": "archive", "tenant_prefix": "192.168.1.0/24", "core_prefix": "100.100.2.0/24"}]
    c["napt_pools"] = [{"tenant": "hosp-n", "addresses": ["100.64.9.1"], "port_low": 20000, "port_high": 65535}]
    c["policy_rules"] = [
        {"name": "%s-%s" % (h, what), "priority": 10, "from_tenant": h, "to_tenant": "archive",
         "protocol": 6, "port_low": port, "port_high": port, "permit": True}
        for h in ("hosp-s", "hosp-n") for what, port in (("dicom", 11112), ("iperf3", 5201))]
    c["settings"] = {"max_sessions": 65536}
    with open(path, "w") as f:
        json.dump(c, f, indent=1)


def swan(path, intent, tap):
    with open(path) as f:
        c = json.load(f)
    moved_t = [t for t in c["tenants"] if t["name"] == "carrier-c"]
    moved_i = [i for i in c["interfaces"] if i["tenant"] == "carrier-c"]
    c["tenants"] = [t for t in c["tenants"] if t["name"] != "carrier-c"]
    c["interfaces"] = [i for i in c["interfaces"] if i["tenant"] != "carrier-c"]
    c["settings"]["exception_interface"] = tap
    with open(path, "w") as f:
        json.dump(c, f, indent=1)
    doc = {
        "schema_version": 1,
        "peers": [{
            "name": "carrier-c", "tenant": "hosp-c", "underlay_tenant": "carrier-c", "tunnel": "t-carrier-c",
            "local_address": "192.0.2.1", "remote_address": "192.0.2.2",
            "local_id": "ix.medix.example", "remote_id": "gw.carrier-c.example", "psk": os.environ["IMAGING_PSK"],
            "ike_proposals": ["aes128gcm16-prfsha256-x25519"], "esp_proposals": ["aes128gcm16"],
            "local_selectors": ["100.100.2.0/24"], "remote_selectors": ["10.0.0.0/24"], "tcp_mss_clamp": 1300}],
        "tenants": moved_t + [{"name": "hosp-c", "description": "hospital C, behind carrier C's strongSwan"}],
        "interfaces": moved_i,
        "routes": [{"tenant": "hosp-c", "prefix": "100.64.0.0/10", "next_tenant": "ix"},
                   {"tenant": "ix", "prefix": "100.64.3.0/24", "next_tenant": "hosp-c"}],
        "static_mappings": [{"tenant": "hosp-c", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.3.0/24"}],
        "policy_rules": [{"name": "hosp-c-" + what, "priority": 10, "from_tenant": "hosp-c", "to_tenant": "archive",
                          "protocol": 6, "port_low": port, "port_high": port, "permit": True}
                         for what, port in (("dicom", 11112), ("iperf3", 5201))],
    }
    fd = os.open(intent, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1)


def esp(alg, file_a, file_b):
    def sa(spi, tunnel, inbound, keys):
        s = {"spi": spi, "tunnel": tunnel, "inbound": inbound}
        if alg == "gcm":
            s.update(cipher="AES_GCM_128", cipher_key=keys[0])
        else:
            s.update(cipher="AES_CBC_128", cipher_key=keys[0], integrity="HMAC_SHA256_128",
                     integrity_key=keys[1])
        return s

    def keys():  # GCM: 16-byte key || 4-byte salt; CBC: 16-byte key, 32-byte HMAC key
        b64 = lambda n: base64.b64encode(os.urandom(n)).decode()  # noqa: E731
        return (b64(20), None) if alg == "gcm" else (b64(16), b64(32))

    ab, ba = keys(), keys()  # A -> B (SPI 0x1001), B -> A (SPI 0x2001)

    def node(me, peer, lan_net, remote_net, my_ul, peer_ul, out_spi, out_keys, in_spi, in_keys, ports):
        tunnel = "t-" + me
        return {
            "schema_version": 1,
            "ports": [{"name": "%s%d" % (me, i), "device": "net_af_packet%d" % i, "promiscuous": True}
                      for i in range(2)],
            "tenants": [{"name": "hosp-" + me, "description": "hospital behind node " + me.upper()},
                        {"name": "carrier", "description": "the carrier between the two nodes"}],
            "interfaces": [
                {"name": me + "-lan", "tenant": "hosp-" + me, "port": ports[0], "addresses": [lan_net + ".1/24"]},
                {"name": me + "-car", "tenant": "carrier", "port": ports[1], "addresses": [my_ul + "/24"]}],
            "tunnels": [{"name": tunnel, "tenant": "hosp-" + me, "underlay_tenant": "carrier",
                         "local_address": my_ul, "remote_address": peer_ul,
                         "remote_selectors": [remote_net + ".0/24"]}],
            "routes": [{"tenant": "hosp-" + me, "prefix": remote_net + ".0/24", "via": {"interface": tunnel}}],
            "sas": [sa(out_spi, tunnel, False, out_keys), sa(in_spi, tunnel, True, in_keys)],
        }

    a = node("a", "b", "10.1.0", "10.2.0", "198.51.100.1", "198.51.100.2", 0x1001, ab, 0x2001, ba, ["a0", "a1"])
    b = node("b", "a", "10.2.0", "10.1.0", "198.51.100.2", "198.51.100.1", 0x2001, ba, 0x1001, ab, ["b1", "b0"])
    # Node B's carrier end is its first vdev, its LAN the second: the ports say which is which.
    for path, cfg in ((file_a, a), (file_b, b)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(cfg, f, indent=1)


def main(argv):
    if len(argv) == 3 and argv[1] == "core":
        core(argv[2])
    elif len(argv) == 5 and argv[1] == "swan":
        swan(*argv[2:])
    elif len(argv) == 5 and argv[1] == "esp" and argv[2] in ("gcm", "cbc"):
        esp(*argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
