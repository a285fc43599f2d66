#!/usr/bin/python3
"""ESP with AES_GCM_256: four tunnels (raw ESP and UDP 4500, ESN off and on), three
packets each way per tunnel. See lib/espmatrix.py for the layout and what is checked."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
import espmatrix

espmatrix.run(__file__, tshark=False)
